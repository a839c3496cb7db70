import { compile, type HtmlToTextOptions } from "html-to-text"

/**
 * The plain-text part of an email, derived from its rendered HTML (channels.md). Mail clients
 * that show text, spam filters that compare both parts and screen readers all read it, so it
 * keeps what the HTML says and where its links go, and drops what only decorates.
 */
const options: HtmlToTextOptions = {
  // RFC 5322 §2.1.1: lines SHOULD be at most 78 characters.
  wordwrap: 78,
  selectors: [
    // "text [url]"; a link whose text is its own address is written once.
    { selector: "a", options: { hideLinkHrefIfSameAsText: true } },
    { selector: "img", format: "skip" },
    // Marketing HTML hides a preheader for the inbox preview; in the text part it would be noise.
    { selector: "[hidden]", format: "skip" },
    { selector: "[style*='display:none']", format: "skip" },
    { selector: "[style*='display: none']", format: "skip" },
    // Headings keep the author's case (the library's default shouts them in capitals).
    ...["h1", "h2", "h3", "h4", "h5", "h6"].map((selector) => ({ selector, options: { uppercase: false } })),
    // Email layouts are tables: each cell on its own lines, or neighbouring cells run together.
    { selector: "table", format: "block" },
    { selector: "tr", format: "block" },
    { selector: "td", format: "block" },
    { selector: "th", format: "block" }
  ]
}

const convert = compile(options)

// Blank lines around the text go; a list's leading indent stays, so every bullet looks alike.
export const htmlToText = (html: string): string => convert(html).replace(/^(?:[ \t]*\n)+|\s+$/g, "")
