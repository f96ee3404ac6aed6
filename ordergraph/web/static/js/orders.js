// Order helpers shared by the customer's pages and the admin board: item summaries, the
// timeline built from `history`, and the Fulfil / Cancel / Refund actions.

import { query } from './api.js';
import { announce, confirmDialog, toast } from './feedback.js';
import { fmt, statusLabel } from './format.js';
import { CANCEL_ORDER, FULFILL_ORDER, REFUND_ORDER } from './queries.js';
import { h, setBusy } from './ui.js';

export function itemsSummary(items) {
  return items.map((item) => `${item.quantity} × ${item.product.name}`).join(', ');
}

export function itemCount(items) {
  return items.reduce((sum, item) => sum + item.quantity, 0);
}

/** Keep the newer of two versions of an order (events may arrive late or twice). */
export function newer(current, incoming) {
  if (!current) return incoming;
  return incoming.version > current.version ? incoming : current;
}

const STATUS_EVENTS = {
  PAYMENT_PENDING: 'Waiting for payment',
  PAID: 'Payment succeeded',
  FULFILLED: 'Fulfilled',
  CANCELLED: 'Cancelled',
  FAILED: 'Payment failed',
  REFUNDED: 'Refunded',
  CREATED: 'Created',
};

function actorName(entry) {
  if (entry.actorKind === 'USER') {
    if (entry.actor) return entry.actor.email;
    return entry.actorRole === 'ADMIN' ? 'Staff' : 'A user';  // customers see staff as a role
  }
  if (entry.actorKind === 'PAYMENT_PROVIDER') return 'Stripe';
  return 'System';
}

function humanize(action) {
  const text = String(action).toLowerCase().replace(/_/g, ' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** history (oldest first) -> [{ status, title, detail, at, actor }] */
export function timeline(history) {
  return history.map((entry) => {
    const after = entry.after || {};
    if (entry.action === 'ORDER_CREATED') {
      return { status: 'CREATED', title: 'Order placed', detail: null, at: entry.at, actor: actorName(entry) };
    }
    if (entry.action === 'ORDER_STATUS_CHANGED' && after.status) {
      let detail = after.reason ? String(after.reason) : null;
      if (after.status === 'PAYMENT_PENDING' && after.reserved_until) {
        detail = 'Stock reserved while you pay';
      }
      const title = STATUS_EVENTS[after.status] || statusLabel(after.status);
      if (detail && detail.toLowerCase() === title.toLowerCase()) detail = null;
      return { status: after.status, title,
        detail: detail ? detail.charAt(0).toUpperCase() + detail.slice(1) : null,
        at: entry.at, actor: actorName(entry) };
    }
    return { status: null, title: humanize(entry.action), detail: null, at: entry.at, actor: actorName(entry) };
  });
}

const ACTIONS = {
  FULFILLED: {
    label: 'Fulfil', done: 'fulfilled', document: FULFILL_ORDER, key: 'fulfillOrder',
    title: (o) => `Fulfil order #${o.number}?`,
    body: (o) => `Mark ${fmt(o.total)} for ${o.customer.email} as shipped${o.shippingAddress
      ? ` to ${o.shippingAddress.name}, ${o.shippingAddress.city} (${o.shippingAddress.country})` : ''}. This cannot be undone.`,
    confirm: 'Fulfil order', danger: false,
  },
  REFUNDED: {
    label: 'Refund', done: 'refunded', document: REFUND_ORDER, key: 'refundOrder',
    title: (o) => `Refund order #${o.number}?`,
    body: (o) => `${fmt(o.total)} goes back to ${o.customer.email}'s card through Stripe.`,
    confirm: 'Refund order', danger: true,
  },
  CANCELLED: {
    label: 'Cancel', done: 'cancelled', document: CANCEL_ORDER, key: 'cancelOrder',
    title: (o) => `Cancel order #${o.number}?`,
    body: () => 'The reserved stock goes back on sale. This cannot be undone.',
    confirm: 'Cancel order', danger: true,
  },
};

/**
 * Buttons for what may happen next to this order. admin: Fulfil / Refund / Cancel;
 * customers: Cancel while the order is unpaid. onDone(order) gets the changed order.
 */
export function orderActions(order, { admin = false, onDone = () => {}, size = 'sm' } = {}) {
  const wanted = admin ? ['FULFILLED', 'REFUNDED', 'CANCELLED'] : ['CANCELLED'];
  const allowed = order.nextStatuses.filter((status) => wanted.includes(status)
    && (admin || ['CREATED', 'PAYMENT_PENDING'].includes(order.status)));
  return allowed.map((status) => {
    const action = ACTIONS[status];
    const label = admin ? action.label : 'Cancel order';
    const button = h('button', {
      type: 'button',
      class: `btn ${size === 'sm' ? 'btn-sm' : ''} ${status === 'FULFILLED' ? 'btn-primary' : ''} ${status !== 'FULFILLED' ? 'btn-danger' : ''}`,
      'aria-label': `${label} order #${order.number}`,
      dataset: { action: status },
    }, label);
    button.addEventListener('click', async () => {
      const ok = await confirmDialog({
        title: action.title(order), body: action.body(order), confirm: action.confirm,
        cancel: admin ? 'Back' : 'Keep order', danger: action.danger,
      });
      if (!ok) return;
      setBusy(button, true);
      try {
        const data = await query(action.document, { id: order.id });
        const result = data[action.key];
        if (result.__typename === 'OrderPayload') {
          toast(`Order #${order.number} ${action.done}.`, { kind: 'success' });
          announce(`Order #${order.number} is now ${statusLabel(result.order.status)}.`);
          onDone(result.order);
        } else {
          toast(result.message || `Order #${order.number} could not be ${action.done}.`, { kind: 'error' });
        }
      } catch (error) {
        toast(error.message, { kind: 'error' });
      } finally {
        if (button.isConnected) setBusy(button, false);
      }
    });
    return button;
  });
}
