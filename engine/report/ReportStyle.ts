/**
 * The report's stylesheet, inlined in the page: system fonts only (with the usual CJK faces, since
 * journey names are often Chinese), nothing fetched. Prints on A4 without the card shadows.
 */
export const REPORT_CSS = `
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f6f9; color: #1a202c;
  font: 14px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", "Noto Sans SC", sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px; }
header, section { background: #fff; border: 1px solid #dde3ea; border-radius: 10px; padding: 20px 24px; margin-bottom: 18px; box-shadow: 0 1px 2px rgba(20, 30, 50, 0.05); }
.eyebrow { margin: 0; color: #5a6a7e; font-size: 12px; letter-spacing: 0.08em; text-transform: uppercase; }
h1 { margin: 4px 0 8px; font-size: 28px; line-height: 1.2; }
h2 { margin: 0 0 8px; font-size: 19px; }
h3 { margin: 18px 0 6px; font-size: 15px; }
p { margin: 6px 0; }
.note, .muted { color: #4a5568; }
.note { font-size: 13px; }
.description { color: #2d3748; }
.chips { margin: 0 0 12px; }
.chip { display: inline-block; margin: 0 6px 4px 0; padding: 1px 9px; border-radius: 999px; background: #edf2f7; color: #2d3748; font-size: 12px; border: 1px solid #d5dde7; }
.chip.small { font-size: 11px; padding: 0 7px; }
.chip.marketing { background: #ebf4ff; border-color: #c3dafe; }
.chip.transactional { background: #f0fff4; border-color: #c6f6d5; }
.chip.active { background: #e6ffed; border-color: #9ae6b4; }
.chip.paused { background: #fffbea; border-color: #f6e05e; }
.chip.draft { background: #f7fafc; border-color: #cbd5e0; }
.facts { display: grid; grid-template-columns: 150px 1fr; gap: 4px 16px; margin: 0; }
.facts dt { color: #5a6a7e; font-weight: 600; }
.facts dd { margin: 0; overflow-wrap: anywhere; }
.flow-wrap { overflow-x: auto; text-align: center; padding: 8px 0; }
svg { font-family: inherit; }
svg.flow { display: inline-block; max-width: none; }
svg.chart { display: block; width: 100%; height: auto; margin: 6px 0 4px; }
svg .ink { fill: #1a202c; }
svg .muted { fill: #4a5568; }
svg .grid { stroke: #e2e8f0; stroke-width: 1; }
svg .reference { stroke: #4a5568; stroke-width: 1.2; stroke-dasharray: 4 3; }
svg .edge { stroke: #5f6b7a; stroke-width: 1.5; }
svg .edge-back { stroke-dasharray: 5 4; }
svg .edge-label { fill: #334155; paint-order: stroke; stroke: #ffffff; stroke-width: 4px; stroke-linejoin: round; }
svg .edge-label.back { fill: #546e7a; font-style: italic; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; font-size: 13px; }
th, td { padding: 6px 8px; border-bottom: 1px solid #e2e8f0; text-align: left; vertical-align: top; }
th { color: #4a5568; font-weight: 600; background: #f7fafc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.compact { width: auto; min-width: 50%; }
tr.current td { background: #f0f7ff; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: 12px; }
.flag { color: #fff; background: #c53030; padding: 1px 6px; border-radius: 4px; font-size: 11px; font-weight: 700; }
.verdicts { margin: 10px 0; padding-left: 20px; }
.verdicts li { margin: 3px 0; }
.warning { background: #fff5f5; border: 1px solid #feb2b2; border-radius: 8px; padding: 8px 12px; color: #742a2a; }
.empty { background: #f7fafc; border: 1px dashed #a0aec0; border-radius: 8px; padding: 18px; color: #2d3748; text-align: center; font-size: 15px; }
footer { color: #5a6a7e; font-size: 12px; padding: 4px 8px 24px; }
@media print { body { background: #fff; } header, section { box-shadow: none; break-inside: avoid; } }
`
