-- The dashboard's recent failures of a product (failed and rolled-back reports of the last days,
-- newest first): an index by state and time, so reading them costs what the failures in the
-- window cost, not the product's whole report history.
CREATE INDEX update_reports_product_state_time ON update_reports (product, state, created_at);
