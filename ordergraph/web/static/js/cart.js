// The cart: lines in localStorage (kept across reloads and shared between tabs). Each line
// keeps the product's name and price as seen when it was added, for display; the server
// prices the order at checkout.

const KEY = 'og.cart';
export const MAX_QUANTITY = 1000;

const listeners = new Set();
let lines = load();

function load() {
  try {
    const parsed = JSON.parse(localStorage.getItem(KEY) || '[]');
    return Array.isArray(parsed) ? parsed.filter((l) => l && l.productId && l.quantity > 0) : [];
  } catch {
    return [];
  }
}

function save() {
  try {
    localStorage.setItem(KEY, JSON.stringify(lines));
  } catch {
    // No storage: the cart lives in memory.
  }
  notify();
}

function notify() {
  for (const fn of [...listeners]) fn(lines);
}

window.addEventListener('storage', (event) => {
  if (event.key === KEY) {
    lines = load();
    notify();
  }
});

function clamp(quantity) {
  return Math.max(0, Math.min(MAX_QUANTITY, Math.floor(Number(quantity) || 0)));
}

export const cart = {
  lines() {
    return lines.map((line) => ({ ...line }));
  },
  count() {
    return lines.reduce((sum, line) => sum + line.quantity, 0);
  },
  quantityOf(productId) {
    const line = lines.find((l) => l.productId === String(productId));
    return line ? line.quantity : 0;
  },
  /** { amount, currency } of all lines, or null for an empty cart. */
  subtotal() {
    if (!lines.length) return null;
    const currency = lines[0].price.currency;
    const amount = lines.reduce((sum, line) => sum + line.price.amount * line.quantity, 0);
    return { amount, currency };
  },
  add(product, quantity) {
    const id = String(product.id);
    const existing = lines.find((l) => l.productId === id);
    const snapshot = { productId: id, sku: product.sku, name: product.name,
      price: { amount: product.price.amount, currency: product.price.currency } };
    if (existing) {
      Object.assign(existing, snapshot, { quantity: clamp(existing.quantity + quantity) });
    } else {
      lines.push({ ...snapshot, quantity: clamp(quantity) });
    }
    lines = lines.filter((l) => l.quantity > 0);
    save();
  },
  setQuantity(productId, quantity) {
    const line = lines.find((l) => l.productId === String(productId));
    if (!line) return;
    line.quantity = clamp(quantity);
    lines = lines.filter((l) => l.quantity > 0);
    save();
  },
  remove(productId) {
    lines = lines.filter((l) => l.productId !== String(productId));
    save();
  },
  clear() {
    lines = [];
    save();
  },
  /** A stable description of what is in the cart (for idempotency keys). */
  fingerprint() {
    return lines.map((l) => `${l.productId}x${l.quantity}`).sort().join(',');
  },
  onChange(fn) {
    listeners.add(fn);
    return () => listeners.delete(fn);
  },
};
