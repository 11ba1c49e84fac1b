"""crm_store."""
