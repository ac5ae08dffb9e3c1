// The bot's formatted bodies, through an allow-list of our own: a few inline and block tags, links only to
// http(s), mailto and tel, no attribute of any other kind. Everything else (a <script>, an <img onerror>, a
// javascript: link, an unknown tag) is shown as the text it is, never as markup. Parsing happens in a
// DOMParser document, which has no browsing context: nothing in it runs or loads.

const ALLOWED = new Set(["b", "strong", "i", "em", "p", "br", "ul", "ol", "li", "code", "pre", "blockquote", "a"]);
const SAFE_HREF = /^(https?:|mailto:|tel:)/i;
const DROPPED = new Set(["mx-reply"]); // a reply's quoted fallback: the chat shows the message itself

/** A DocumentFragment of `doc` that renders `html` safely. */
export function sanitise(html, doc = document) {
  const parsed = new DOMParser().parseFromString(`<body>${html}</body>`, "text/html");
  const out = doc.createDocumentFragment();
  for (const child of Array.from(parsed.body.childNodes)) copy(child, out, doc);
  return out;
}

function copy(node, parent, doc) {
  if (node.nodeType === Node.TEXT_NODE) {
    parent.appendChild(doc.createTextNode(node.nodeValue ?? ""));
    return;
  }
  if (node.nodeType !== Node.ELEMENT_NODE) return; // comments, processing instructions
  const tag = node.localName;
  if (DROPPED.has(tag)) return;
  if (!ALLOWED.has(tag)) {
    parent.appendChild(doc.createTextNode(node.outerHTML));
    return;
  }
  let element;
  if (tag === "a") {
    const href = (node.getAttribute("href") ?? "").trim();
    if (!SAFE_HREF.test(href)) {
      parent.appendChild(doc.createTextNode(node.outerHTML));
      return;
    }
    element = doc.createElement("a");
    element.setAttribute("href", href);
    element.setAttribute("rel", "noopener noreferrer");
    element.setAttribute("target", "_blank");
  } else {
    element = doc.createElement(tag);
  }
  for (const child of Array.from(node.childNodes)) copy(child, element, doc);
  parent.appendChild(element);
}
