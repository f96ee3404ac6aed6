-- A shop of realistic size for the benchmarks (run on a freshly migrated database).
--
-- 10,000 customers (ids 1..10000) and one admin (10001), password "bench-password";
-- 1,001 products: 1..1000 are the catalog (product 1 doubles as the hot product), 1001 is
-- the product the sell-out runs fight over; 100,000 past orders with 1-3 lines each, their
-- audit rows and stock movements, as the app itself would have written them.
-- Everything is ANALYZEd afterwards (bench/common.py), so plans are the production ones.

INSERT INTO users (email, name, role, password_hash, created_at)
SELECT 'customer' || g || '@bench.example', 'Customer ' || g, 'CUSTOMER',
       '$argon2id$v=19$m=19456,t=2,p=1$+rV7YQS5NzrBu3uSzSkMYg$E/jVhcKxREH+wO+hsIHw0EgUOKXkovVV5Y/Am4UV+xQ',
       now() - interval '400 days' + g * interval '1 hour'
FROM generate_series(1, 10000) AS g ORDER BY g;

INSERT INTO users (email, name, role, password_hash, created_at)
VALUES ('admin@bench.example', 'Bench Admin', 'ADMIN',
        '$argon2id$v=19$m=19456,t=2,p=1$+rV7YQS5NzrBu3uSzSkMYg$E/jVhcKxREH+wO+hsIHw0EgUOKXkovVV5Y/Am4UV+xQ',
        now() - interval '500 days');

INSERT INTO products (sku, name, description, price_cents, currency, active, created_at,
                      updated_at)
SELECT 'bench-' || lpad(g::text, 5, '0'), 'Bench product ' || g,
       'A sturdy, well-made thing that customers keep buying: item ' || g ||
       ' of the benchmark catalog, with a description about as long as a real one.',
       499 + (g * 3701) % 19500, 'usd', true,
       now() - interval '300 days', now() - interval '300 days'
FROM generate_series(1, 1001) AS g ORDER BY g;

INSERT INTO inventory (product_id, available, reserved, updated_at)
SELECT id, 100000000, 0, now() FROM products ORDER BY id;

-- Past orders: mostly paid or fulfilled, some cancelled.
INSERT INTO orders (customer_id, status, currency, total_cents, subtotal_cents, version,
                    idempotency_key,
                    cart_fingerprint, payment_provider, payment_intent_id,
                    payment_client_secret, payment_status, created_at, updated_at)
SELECT 1 + (g * 7) % 10000,
       (ARRAY['PAID', 'FULFILLED', 'FULFILLED', 'CANCELLED', 'FULFILLED'])[1 + g % 5],
       'usd', 0, 0, 3, 'seed-' || g, md5(g::text), 'stripe', 'pi_seed_' || g,
       'pi_seed_' || g || '_secret_seed', 'succeeded',
       now() - (100000 - g) * interval '4 minutes', now() - (100000 - g) * interval '4 minutes'
FROM generate_series(1, 100000) AS g ORDER BY g;

INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents)
SELECT o.id, line.product_id, 1 + (o.id + line.product_id) % 2, p.price_cents
FROM orders o
CROSS JOIN LATERAL (
    SELECT DISTINCT 1 + ((o.id * 7919 + k * 104729) % 1000) AS product_id
    FROM generate_series(1, 1 + o.id % 3) AS k) AS line
JOIN products p ON p.id = line.product_id;

UPDATE orders o SET total_cents = t.total, subtotal_cents = t.total
FROM (SELECT order_id, sum(quantity * unit_price_cents) AS total
      FROM order_items GROUP BY order_id) AS t
WHERE t.order_id = o.id;

-- The audit trail: ORDER_CREATED, then two status changes per order; STOCK_RESERVED per line.
INSERT INTO audit_log (at, actor_kind, actor_id, action, entity_type, entity_id, before, after)
SELECT o.created_at, 'USER', o.customer_id, 'ORDER_CREATED', 'ORDER', o.id::text, NULL,
       jsonb_build_object('id', o.id, 'customer_id', o.customer_id, 'status', 'CREATED',
                          'version', 1, 'currency', 'usd', 'total', o.total_cents,
                          'lines', '[]'::jsonb, 'payment', NULL, 'reserved_until', NULL,
                          'created_at', o.created_at, 'updated_at', o.created_at)
FROM orders o ORDER BY o.id;

INSERT INTO audit_log (at, actor_kind, actor_id, action, entity_type, entity_id, before, after)
SELECT o.created_at + interval '1 second', 'USER', o.customer_id, 'STOCK_RESERVED',
       'INVENTORY', i.product_id::text,
       jsonb_build_object('available', 100000000, 'reserved', 0),
       jsonb_build_object('available', 99999999, 'reserved', 1, 'order_id', o.id)
FROM orders o JOIN order_items i ON i.order_id = o.id ORDER BY o.id;

INSERT INTO audit_log (at, actor_kind, actor_id, action, entity_type, entity_id, before, after)
SELECT o.created_at + s * interval '1 minute', 'PAYMENT_PROVIDER', NULL,
       'ORDER_STATUS_CHANGED', 'ORDER', o.id::text,
       jsonb_build_object('status', 'CREATED', 'version', s),
       jsonb_build_object('status', o.status, 'version', s + 1)
FROM orders o CROSS JOIN generate_series(1, 2) AS s ORDER BY o.id, s;

INSERT INTO stock_movements (product_id, delta_available, delta_reserved, reason, order_id,
                             actor_kind, actor_id, note, at)
SELECT i.product_id, -i.quantity, i.quantity, 'RESERVED', o.id, 'USER', o.customer_id, NULL,
       o.created_at
FROM orders o JOIN order_items i ON i.order_id = o.id ORDER BY o.id;

INSERT INTO stock_movements (product_id, delta_available, delta_reserved, reason, order_id,
                             actor_kind, actor_id, note, at)
SELECT i.product_id, CASE WHEN o.status = 'CANCELLED' THEN i.quantity ELSE 0 END,
       -i.quantity, CASE WHEN o.status = 'CANCELLED' THEN 'RELEASED' ELSE 'SOLD' END, o.id,
       'PAYMENT_PROVIDER', NULL, NULL, o.created_at + interval '2 minutes'
FROM orders o JOIN order_items i ON i.order_id = o.id ORDER BY o.id;
