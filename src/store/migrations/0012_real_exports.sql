-- Real exports (issue 14). Identities from the event stream: the e-mail and phone of a
-- Segment / RudderStack `identify` call's traits, and the previous id of an
-- `alias` call. Added at the end of the tables (column order does not
-- matter: every insert names its columns).
ALTER TABLE stg_web_events ADD COLUMN email TEXT;
ALTER TABLE stg_web_events ADD COLUMN phone TEXT;
ALTER TABLE stg_web_events ADD COLUMN previous_id TEXT;
ALTER TABLE clean_web_events ADD COLUMN email TEXT;
ALTER TABLE clean_web_events ADD COLUMN phone TEXT;
ALTER TABLE clean_web_events ADD COLUMN previous_id TEXT;
-- A row's own time zone (a mappable field of every system): its naive
-- times are read in it.
ALTER TABLE stg_crm_customers ADD COLUMN timezone TEXT;
ALTER TABLE stg_web_events ADD COLUMN timezone TEXT;
ALTER TABLE stg_transactions ADD COLUMN timezone TEXT;
-- A web purchase and its order row are one fact: found by order id.
CREATE INDEX IF NOT EXISTS clean_tx_by_order ON clean_transactions(order_id);
CREATE INDEX IF NOT EXISTS events_web_by_order ON customer360_events(order_id)
  WHERE system = 'web' AND order_id IS NOT NULL;
-- Orders by status and in one reporting currency (rules/orders.toml): the
-- refunded amount of a partly refunded order; the amount and currency as
-- the order had them, before conversion.
ALTER TABLE stg_transactions ADD COLUMN refunded_amount REAL;
ALTER TABLE clean_transactions ADD COLUMN original_revenue REAL;
ALTER TABLE clean_transactions ADD COLUMN original_currency TEXT;
-- An order's lines (sources with order_lines: one row per line, as
-- Shopify exports them): a JSON array of {product_id, product_name,
-- category, quantity, unit_price}.
ALTER TABLE clean_transactions ADD COLUMN lines TEXT;
-- The buyer's name and phone on an order (guest checkouts, Square's
-- Customer Name): fuzzy matching compares them with the CRM.
ALTER TABLE stg_transactions ADD COLUMN first_name TEXT;
ALTER TABLE stg_transactions ADD COLUMN last_name TEXT;
ALTER TABLE stg_transactions ADD COLUMN full_name TEXT;
ALTER TABLE stg_transactions ADD COLUMN phone TEXT;
ALTER TABLE clean_transactions ADD COLUMN first_name TEXT;
ALTER TABLE clean_transactions ADD COLUMN last_name TEXT;
ALTER TABLE clean_transactions ADD COLUMN full_name TEXT;
ALTER TABLE clean_transactions ADD COLUMN phone TEXT;
