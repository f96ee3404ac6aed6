-- One checkout's database work, as ordergraph's transaction 1 does it (lock first):
-- idempotency-key lookup, the cart's products, lock the inventory rows FOR UPDATE in
-- product-id order, check stock, insert the order, its items, the audit rows (ORDER_CREATED
-- + one STOCK_RESERVED per line) and the stock movements, move available -> reserved, commit.
-- Run by bench/pgbench.py: `-D hot=1` buys product 1 only; `-D hot=0` buys 1-3 distinct
-- products picked uniformly from 1..1000.
\set uid random(1, 10000)
\set key random(1, 2000000000)
\if :hot
\set n 1
\set p1 1
\set p2 1
\set p3 1
\else
\set n random(1, 3)
\set p1 random(1, 1000)
\set p2 random(1, 1000)
\set p3 random(1, 1000)
\endif
BEGIN;
SELECT * FROM orders WHERE customer_id = :uid AND idempotency_key = 'pgb-' || :client_id || '-' || :key;
SELECT * FROM products WHERE id = ANY((ARRAY[:p1, :p2, :p3]::bigint[])[1:(:n)]);
SELECT count(*) AS nlocked, min(available) AS minavail FROM (SELECT * FROM inventory WHERE product_id = ANY((ARRAY[:p1, :p2, :p3]::bigint[])[1:(:n)]) ORDER BY product_id FOR UPDATE) AS locked \gset
\if :minavail >= 1
INSERT INTO orders (customer_id, status, currency, total_cents, subtotal_cents, version, idempotency_key, cart_fingerprint, created_at, updated_at) VALUES (:uid, 'CREATED', 'usd', 2999 * :nlocked::int, 2999 * :nlocked::int, 1, 'pgb-' || :client_id || '-' || :key, md5(:key::text), now(), now()) RETURNING id AS order_id \gset
INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) SELECT :order_id::bigint, pid, 1, 2999 FROM (SELECT DISTINCT unnest((ARRAY[:p1, :p2, :p3]::bigint[])[1:(:n)]) AS pid) AS cart ORDER BY pid;
UPDATE inventory SET available = available - 1, reserved = reserved + 1, updated_at = now() WHERE product_id = ANY((ARRAY[:p1, :p2, :p3]::bigint[])[1:(:n)]);
INSERT INTO audit_log (at, actor_kind, actor_id, action, entity_type, entity_id, before, after) SELECT now(), 'USER', :uid::bigint, 'ORDER_CREATED', 'ORDER', :order_id::text, NULL, jsonb_build_object('id', :order_id::bigint, 'customer_id', :uid::bigint, 'status', 'CREATED', 'version', 1, 'currency', 'usd', 'total', 2999 * :nlocked::int, 'lines', jsonb_build_array(jsonb_build_object('product_id', :p1::bigint, 'quantity', 1, 'unit_price', 2999)), 'payment', NULL, 'reserved_until', NULL, 'created_at', now(), 'updated_at', now()) UNION ALL SELECT now(), 'USER', :uid::bigint, 'STOCK_RESERVED', 'INVENTORY', pid::text, jsonb_build_object('available', 100, 'reserved', 0), jsonb_build_object('available', 99, 'reserved', 1, 'order_id', :order_id::bigint) FROM (SELECT DISTINCT unnest((ARRAY[:p1, :p2, :p3]::bigint[])[1:(:n)]) AS pid) AS cart;
INSERT INTO stock_movements (product_id, delta_available, delta_reserved, reason, order_id, actor_kind, actor_id, note, at) SELECT pid, -1, 1, 'RESERVED', :order_id::bigint, 'USER', :uid::bigint, NULL, now() FROM (SELECT DISTINCT unnest((ARRAY[:p1, :p2, :p3]::bigint[])[1:(:n)]) AS pid) AS cart ORDER BY pid;
COMMIT;
\else
ROLLBACK;
\endif
