-- Reading a product's reports costs what is read, not the product's whole report history:
-- - the reports list (`GET …/reports`, newest first, paged by id) walks (product, id) backwards;
-- - the dashboard's recent failures (failed and rolled-back reports of the last days) read
--   (product, state, created_at) for just the window.
CREATE INDEX update_reports_product_id ON update_reports (product, id);
CREATE INDEX update_reports_product_state_time ON update_reports (product, state, created_at);
