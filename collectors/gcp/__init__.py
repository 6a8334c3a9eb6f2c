"""Google Cloud: prices (``prices``) from the Cloud Billing Catalog API."""
