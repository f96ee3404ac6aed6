// Shipping: the shop's rates (shippingRates), what a cart's shipping costs, and the address
// form of the checkout page (pre-filled from the default address, errors next to each part).

import { query } from './api.js';
import { SHIPPING_RATES } from './queries.js';
import { formField, h } from './ui.js';

// ISO 3166-1 alpha-2, as the server accepts them (domain/shipping.py).
const COUNTRY_CODES = 'AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW'.split(' ');

let ratesPromise = null;

export function shippingRates() {
  if (!ratesPromise) {
    ratesPromise = query(SHIPPING_RATES).then((data) => data.shippingRates);
    ratesPromise.catch(() => { ratesPromise = null; });
  }
  return ratesPromise;
}

/** What shipping costs for a subtotal ({ amount, currency }), as the server computes it. */
export function shippingCost(rates, subtotal) {
  const free = rates.freeShippingOver && subtotal.amount >= rates.freeShippingOver.amount;
  return { amount: free ? 0 : rates.flatRate.amount, currency: subtotal.currency };
}

let names = null;
export function countryName(code) {
  try {
    names = names || new Intl.DisplayNames(undefined, { type: 'region' });
    return names.of(code) || code;
  } catch {
    return code;
  }
}

/** An address as lines of text, for the order page and the admin board. */
export function addressLines(address) {
  if (!address) return [];
  const cityLine = [address.postalCode, address.city].filter(Boolean).join(' ');
  return [address.name, address.line1, address.line2, cityLine, address.region,
    countryName(address.country)].filter(Boolean);
}

export function addressBlock(address) {
  return h('address', { class: 'address', dataset: { address: '' } },
    addressLines(address).map((line) => h('div', {}, line)));
}

function guessCountry() {
  const match = /-([A-Z]{2})$/.exec(navigator.language || '');
  return match && COUNTRY_CODES.includes(match[1]) ? match[1] : 'US';
}

// The form's parts: GraphQL name, label, autocomplete, longest, required.
const PARTS = [
  ['name', 'Full name', 'name', 100, true],
  ['line1', 'Address', 'address-line1', 200, true],
  ['line2', 'Apartment, suite, etc. (optional)', 'address-line2', 200, false],
  ['city', 'City', 'address-level2', 100, true],
  ['postalCode', 'Postal code', 'postal-code', 20, true],
  ['region', 'State, province or region (optional)', 'address-level1', 100, false],
];

/**
 * The address form: { el, read(), fill(address), problem(part, message), clear(), onInput(fn) }.
 * read() is null (and every empty required part marked) when the address is incomplete.
 */
export function addressForm() {
  const fields = new Map();
  for (const [part, label, autocomplete, longest, required] of PARTS) {
    fields.set(part, formField({ label, name: `ship-${part}`,
      attrs: { autocomplete: `shipping ${autocomplete}`, maxlength: String(longest), ...(required ? { required: true } : {}) } }));
  }
  const country = formField({ label: 'Country', name: 'ship-country' });
  const select = h('select', { id: country.input.id, name: 'ship-country', class: 'input',
    autocomplete: 'shipping country', 'aria-describedby': country.input.getAttribute('aria-describedby') },
  COUNTRY_CODES.map((code) => ({ code, name: countryName(code) }))
    .sort((a, b) => a.name.localeCompare(b.name))
    .map(({ code, name }) => h('option', { value: code }, name)));
  country.input.replaceWith(select);
  country.input = select;
  select.value = guessCountry();
  fields.set('country', country);
  for (const field of fields.values()) {
    // Typing in a part marked wrong takes its mark away.
    field.input.addEventListener('input', () => {
      field.input.removeAttribute('aria-invalid');
      field.error.textContent = '';
    });
  }

  const el = h('div', { class: 'address-form' },
    fields.get('name').wrap, fields.get('line1').wrap, fields.get('line2').wrap,
    h('div', { class: 'field-row' }, fields.get('postalCode').wrap, fields.get('city').wrap),
    fields.get('region').wrap, country.wrap);

  function problem(part, message) {
    const field = fields.get(part);
    if (!field) return false;
    field.input.setAttribute('aria-invalid', 'true');
    field.error.textContent = message;
    return true;
  }

  return {
    el,
    read() {
      const address = {};
      let complete = true;
      for (const [part, , , , required] of PARTS) {
        const value = fields.get(part).input.value.trim();
        if (required && !value) {
          problem(part, 'This is required.');
          complete = false;
        }
        address[part] = value || null;
      }
      address.country = select.value;
      return complete ? address : null;
    },
    fill(address) {
      if (!address) return;
      for (const [part] of PARTS) fields.get(part).input.value = address[part] || '';
      if (COUNTRY_CODES.includes(address.country)) select.value = address.country;
    },
    problem,
    /** Focus the first part marked invalid. */
    focusProblem() {
      const bad = [...fields.values()].find((f) => f.input.getAttribute('aria-invalid') === 'true');
      if (bad) bad.input.focus();
    },
    clear() {
      for (const field of fields.values()) {
        field.input.removeAttribute('aria-invalid');
        field.error.textContent = '';
      }
    },
    onInput(fn) {
      el.addEventListener('input', fn);
      el.addEventListener('change', fn);
    },
  };
}
