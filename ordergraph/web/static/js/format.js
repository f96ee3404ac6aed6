// How values are shown: money (minor units), dates and times, order status, stock levels.

import { h } from './ui.js';

// ---- money ------------------------------------------------------------------------------

const formatters = new Map();

function currencyFormatter(currency) {
  const code = String(currency || 'usd').toUpperCase();
  let formatter = formatters.get(code);
  if (!formatter) {
    formatter = new Intl.NumberFormat(undefined, { style: 'currency', currency: code });
    formatters.set(code, formatter);
  }
  return formatter;
}

/** Integer minor units -> "$1,234.56". Never goes through a float: the decimal is a string. */
export function money(amount, currency = 'usd') {
  const formatter = currencyFormatter(currency);
  const digits = formatter.resolvedOptions().maximumFractionDigits;
  const units = BigInt(amount);
  const negative = units < 0n;
  const text = (negative ? -units : units).toString().padStart(digits + 1, '0');
  const decimal = digits ? `${text.slice(0, -digits)}.${text.slice(-digits)}` : text;
  return formatter.format(`${negative ? '-' : ''}${decimal}`);
}

/** Money object from the API ({ amount, currency }) -> formatted string. */
export function fmt(value) {
  return money(value.amount, value.currency);
}

/** "149.99" -> 14999 (minor units), or null when it is not a plain amount. */
export function parseMoney(text, currency = 'usd') {
  const digits = currencyFormatter(currency).resolvedOptions().maximumFractionDigits;
  const cleaned = String(text).trim().replace(/[\s,$€£]/g, '');
  const match = /^(\d+)(?:\.(\d*))?$/.exec(cleaned);
  if (!match) return null;
  const fraction = match[2] || '';
  if (fraction.length > digits) return null;
  return Number(BigInt(match[1] + fraction.padEnd(digits, '0')));
}

/** 14999 -> "149.99" for an input field. */
export function moneyInput(amount, currency = 'usd') {
  const digits = currencyFormatter(currency).resolvedOptions().maximumFractionDigits;
  const text = String(amount).padStart(digits + 1, '0');
  return digits ? `${text.slice(0, -digits)}.${text.slice(-digits)}` : text;
}

// ---- dates ------------------------------------------------------------------------------

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const timeOnly = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit', second: '2-digit' });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

export function formatDateTime(iso) {
  return dateTime.format(new Date(iso));
}

export function formatTime(iso) {
  return timeOnly.format(new Date(iso));
}

export function timeAgo(iso) {
  const seconds = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 45) return 'just now';
  if (abs < 3600) return relative.format(Math.round(seconds / 60), 'minute');
  if (abs < 86400) return relative.format(Math.round(seconds / 3600), 'hour');
  return relative.format(Math.round(seconds / 86400), 'day');
}

/** A <time> element with the full date in its title. */
export function when(iso, style = 'ago') {
  const text = style === 'ago' ? timeAgo(iso) : formatDateTime(iso);
  return h('time', { datetime: iso, title: formatDateTime(iso) }, text);
}

// ---- status -----------------------------------------------------------------------------

export const STATUS_LABELS = {
  CREATED: 'Created',
  PAYMENT_PENDING: 'Payment pending',
  PAID: 'Paid',
  FULFILLED: 'Fulfilled',
  CANCELLED: 'Cancelled',
  FAILED: 'Failed',
  REFUNDED: 'Refunded',
};

export function statusLabel(status) {
  return STATUS_LABELS[status] || status;
}

export function statusPill(status, { large = false } = {}) {
  return h('span', { class: large ? 'pill pill-lg' : 'pill', dataset: { status } },
    statusLabel(status));
}

/** Catalog stock badge: "In stock", "Only 3 left", "Sold out". */
export const LOW_STOCK = 5;

export function stockText(available) {
  if (available <= 0) return 'Sold out';
  if (available <= LOW_STOCK) return `Only ${available} left`;
  return 'In stock';
}

export function stockLevel(available) {
  if (available <= 0) return 'out';
  if (available <= LOW_STOCK) return 'low';
  return 'ok';
}
