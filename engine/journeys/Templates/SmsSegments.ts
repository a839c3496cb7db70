/**
 * How many SMS segments a text costs (channels.md, SMS): GSM-7 fits 160 characters in one segment
 * and 153 per segment when split; anything outside GSM-7 (any Chinese) makes the whole message
 * UCS-2, 70 / 67. Characters of the GSM-7 extension table (`{ } [ ] ~ \ | ^ €`) take two.
 */

const GSM7_BASIC =
  "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
const GSM7_EXTENSION = "\f^{}\\[~]|€"

export type SmsEncoding = "GSM-7" | "UCS-2"

export interface SmsCost {
  readonly encoding: SmsEncoding
  /** characters as the encoding counts them (septets for GSM-7, UTF-16 units for UCS-2) */
  readonly length: number
  readonly segments: number
  /** the most one segment holds in this encoding */
  readonly singleLimit: number
}

export const smsCost = (text: string): SmsCost => {
  let septets = 0
  for (const char of text) {
    if (GSM7_BASIC.includes(char)) septets += 1
    else if (GSM7_EXTENSION.includes(char)) septets += 2
    else return cost("UCS-2", text.length, 70, 67)
  }
  return cost("GSM-7", septets, 160, 153)
}

const cost = (encoding: SmsEncoding, length: number, single: number, multi: number): SmsCost => ({
  encoding,
  length,
  segments: length === 0 ? 0 : length <= single ? 1 : Math.ceil(length / multi),
  singleLimit: single
})
