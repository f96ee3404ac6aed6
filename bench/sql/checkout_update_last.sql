-- The same checkout with the row locks taken last: everything that needs no lock first (the
-- idempotency lookup, products, the order, its items and its ORDER_CREATED audit row), then
-- ONE statement that moves available -> reserved only where `available >= quantity` and
-- writes the STOCK_RESERVED audit rows and the stock movements from its RETURNING rows;
-- commit if every line moved, roll back otherwise. Locks are held for one statement + COMMIT.
-- Same variables as checkout_lock_first.sql.
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
SELECT count(*) AS ncart, sum(price_cents) AS total FROM (SELECT * FROM products WHERE id = ANY((ARRAY[:p1, :p2, :p3]::bigint[])[1:(:n)])) AS cart \gset
INSERT INTO orders (customer_id, status, currency, total_cents, subtotal_cents, version, idempotency_key, cart_fingerprint, created_at, updated_at) VALUES (:uid, 'CREATED', 'usd', :total, :total, 1, 'pgb-' || :client_id || '-' || :key, md5(:key::text), now(), now()) RETURNING id AS order_id \gset
INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) SELECT :order_id::bigint, pid, 1, 2999 FROM (SELECT DISTINCT unnest((ARRAY[:p1, :p2, :p3]::bigint[])[1:(:n)]) AS pid) AS cart ORDER BY pid;
INSERT INTO audit_log (at, actor_kind, actor_id, action, entity_type, entity_id, before, after) VALUES (now(), 'USER', :uid::bigint, 'ORDER_CREATED', 'ORDER', :order_id::text, NULL, jsonb_build_object('id', :order_id::bigint, 'customer_id', :uid::bigint, 'status', 'CREATED', 'version', 1, 'currency', 'usd', 'total', :total::bigint, 'lines', jsonb_build_array(jsonb_build_object('product_id', :p1::bigint, 'quantity', 1, 'unit_price', 2999)), 'payment', NULL, 'reserved_until', NULL, 'created_at', now(), 'updated_at', now()));
WITH moved AS (UPDATE inventory SET available = available - 1, reserved = reserved + 1, updated_at = now() WHERE product_id = ANY((ARRAY[:p1, :p2, :p3]::bigint[])[1:(:n)]) AND available >= 1 RETURNING product_id, available, reserved), audit AS (INSERT INTO audit_log (at, actor_kind, actor_id, action, entity_type, entity_id, before, after) SELECT now(), 'USER', :uid::bigint, 'STOCK_RESERVED', 'INVENTORY', product_id::text, jsonb_build_object('available', available + 1, 'reserved', reserved - 1), jsonb_build_object('available', available, 'reserved', reserved, 'order_id', :order_id::bigint) FROM moved), ledger AS (INSERT INTO stock_movements (product_id, delta_available, delta_reserved, reason, order_id, actor_kind, actor_id, note, at) SELECT product_id, -1, 1, 'RESERVED', :order_id::bigint, 'USER', :uid::bigint, NULL, now() FROM moved) SELECT count(*) AS nmoved FROM moved \gset
\if :nmoved = :ncart
COMMIT;
\else
ROLLBACK;
\endif
