// h builds DOM elements. Text always goes through text nodes, never
// innerHTML, so names, reasons and API errors cannot inject markup.
//   h('div', {class: 'x', onclick: fn, hidden: true}, 'text', child, [more])
export function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, kids);
  return el;
}

function append(el, kids) {
  for (const k of kids) {
    if (k === undefined || k === null || k === false) continue;
    if (Array.isArray(k)) append(el, k);
    else if (k instanceof Node) el.append(k);
    else el.append(document.createTextNode(String(k)));
  }
}

// fill replaces el's children with kids, skipping null, undefined and false
// (the DOM's own replaceChildren would print them).
export function fill(el, ...kids) {
  el.replaceChildren();
  append(el, kids);
  return el;
}
