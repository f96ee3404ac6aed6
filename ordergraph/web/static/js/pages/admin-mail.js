// #/admin/mail : what the server's local SMTP sink received (local mail mode, development
// only): every customer email, as sent over SMTP, newest first, with its links clickable.

import { query } from '../api.js';
import { formatDateTime } from '../format.js';
import { LOCAL_MAILBOX } from '../queries.js';
import { emptyState, errorState, fill, h, loadingState } from '../ui.js';
import { adminNav } from './admin-nav.js';

export const title = 'Mail';

const URL_PATTERN = /(https?:\/\/[^\s<>"]+)/g;

/** Plain text with its http(s) links as anchors (text nodes only: never HTML). */
function linkify(text) {
  return text.split(URL_PATTERN).map((part, i) => (i % 2 ? h('a', { href: part }, part) : part));
}

/**
 * The HTML version in a frame. A srcdoc frame lives under this page's Content-Security-Policy,
 * which refuses style attributes (even while parsing), so they are taken out of the markup and
 * put back through the CSSOM once the frame has loaded, which the policy allows. Our templates
 * escape every attribute value and text with quotes as &quot; (adapters/mail/templates.py), so
 * ` style="` can only start a real attribute. The sandbox lets no script run in the frame;
 * same-origin only so that we may set those styles.
 */
function htmlFrame(mail) {
  const styles = [];
  const markup = mail.html.replace(/\sstyle="([^"]*)"/g, (_, css) => {
    styles.push(css);
    return ` data-mail-style="${styles.length - 1}"`;
  });
  const frame = h('iframe', {
    class: 'mail-html', sandbox: 'allow-same-origin', srcdoc: markup, title: `HTML of ${mail.subject}`,
  });
  frame.addEventListener('load', () => {
    for (const el of frame.contentDocument?.querySelectorAll('[data-mail-style]') ?? []) {
      el.style.cssText = styles[Number(el.dataset.mailStyle)] ?? '';
    }
  });
  return frame;
}

function message(mail) {
  const details = h('details', { class: 'mail-item card' },
    h('summary', { class: 'mail-summary' },
      h('span', { class: 'mail-subject' }, mail.subject),
      h('span', { class: 'mail-meta' }, `to ${mail.to.join(', ')} · ${formatDateTime(mail.receivedAt)}`)),
    h('div', { class: 'card-body' },
      h('p', { class: 'mail-meta' }, `From ${mail.from}`),
      h('pre', { class: 'mail-text' }, linkify(mail.text)),
      mail.html ? h('details', {}, h('summary', {}, 'HTML version'), htmlFrame(mail)) : null));
  return details;
}

export function mount(root, { scope }) {
  const list = h('div', { class: 'mail-list' }, loadingState());
  const refreshButton = h('button', { type: 'button', class: 'btn' }, 'Refresh');
  fill(root, adminNav('/admin/mail'),
    h('div', { class: 'page-head' },
      h('div', {}, h('h1', {}, 'Mail'),
        h('p', { class: 'sub' }, 'Local mail mode: the server delivers customer email to its own SMTP sink instead of a mail server (set SMTP_URL for a real one). Not in production.')),
      h('div', { class: 'actions' }, refreshButton)),
    list);

  let shown = null; // the ids on screen: re-render only when new mail came (open items stay open)
  async function load() {
    try {
      const data = await query(LOCAL_MAILBOX);
      if (!scope.alive) return;
      const mails = data.localMailbox;
      const ids = mails === null ? 'none' : mails.map((m) => m.id).join(',');
      if (ids === shown) return;
      shown = ids;
      if (mails === null) {
        fill(list, emptyState('No local mailbox', 'This server sends email through SMTP_URL; read it in your mail provider.'));
      } else if (!mails.length) {
        fill(list, emptyState('No email yet', 'Pay for an order or ask for a password reset, and its email shows up here.'));
      } else {
        fill(list, mails.map(message));
      }
    } catch (error) {
      if (scope.alive) fill(list, errorState('the mailbox', error, load));
    }
  }
  scope.listen(refreshButton, 'click', load);
  scope.interval(load, 3000); // email leaves the outbox within a second or two
  load();
  return { refresh: load };
}
