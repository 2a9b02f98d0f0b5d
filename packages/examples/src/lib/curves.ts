/**
 * Training curves as a small hand-written SVG: loss on the left panel, accuracies on the right,
 * one point per epoch (like d2l's Animator, without a plotting library).
 */

export interface Series {
  name: string;
  values: number[];
  color: string;
  dashed?: boolean;
}

interface PanelBox {
  x: number;
  y: number;
  width: number;
  height: number;
}

const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const fmt = (v: number): string => String(Number(v.toFixed(4)));

/** Tick values: about `count` round numbers covering [lo, hi]. */
function ticks(lo: number, hi: number, count = 5): number[] {
  const span = hi - lo || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function panel(box: PanelBox, title: string, series: Series[], epochs: number, legendAt: "top" | "bottom", yRange?: [number, number]): string {
  const all = series.flatMap((s) => s.values).filter(Number.isFinite);
  let [lo, hi] = yRange ?? [Math.min(...all), Math.max(...all)];
  if (!all.length) [lo, hi] = [0, 1];
  if (hi - lo < 1e-9) [lo, hi] = [lo - 0.5, hi + 0.5];
  const pad = (hi - lo) * 0.05;
  if (!yRange) [lo, hi] = [lo - pad, hi + pad];
  const sx = (e: number): number => box.x + (epochs <= 1 ? box.width / 2 : ((e - 1) / (epochs - 1)) * box.width);
  const sy = (v: number): number => box.y + box.height - ((v - lo) / (hi - lo)) * box.height;
  const parts: string[] = [];
  parts.push(`<text x="${box.x + box.width / 2}" y="${box.y - 10}" text-anchor="middle" font-weight="bold">${esc(title)}</text>`);
  parts.push(`<rect x="${box.x}" y="${box.y}" width="${box.width}" height="${box.height}" fill="none" stroke="#999"/>`);
  for (const t of ticks(lo, hi)) {
    const y = sy(t).toFixed(1);
    parts.push(`<line x1="${box.x}" x2="${box.x + box.width}" y1="${y}" y2="${y}" stroke="#eee"/>`);
    parts.push(`<text x="${box.x - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${fmt(t)}</text>`);
  }
  const xStep = Math.max(1, Math.ceil(epochs / 10));
  for (let e = 1; e <= epochs; e += xStep) {
    parts.push(`<text x="${sx(e).toFixed(1)}" y="${box.y + box.height + 16}" text-anchor="middle">${e}</text>`);
  }
  parts.push(`<text x="${box.x + box.width / 2}" y="${box.y + box.height + 34}" text-anchor="middle">epoch</text>`);
  series.forEach((s, k) => {
    const pts = s.values.map((v, i) => [sx(i + 1), sy(v)] as const).filter(([, y]) => Number.isFinite(y));
    const dash = s.dashed ? ` stroke-dasharray="6 4"` : "";
    if (pts.length > 1) {
      parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2"${dash} points="${pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ")}"/>`);
    }
    for (const [x, y] of pts) parts.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3" fill="${s.color}"/>`);
    const ly = legendAt === "top" ? box.y + 14 + k * 16 : box.y + box.height - 14 - (series.length - 1 - k) * 16;
    const lx = box.x + box.width - 130;
    parts.push(`<line x1="${lx}" x2="${lx + 20}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${dash}/>`);
    parts.push(`<text x="${lx + 26}" y="${ly}" dominant-baseline="middle">${esc(s.name)}</text>`);
  });
  return parts.join("\n");
}

/**
 * An SVG of two panels, `loss` series on the left and `accuracy` series on the right (its axis the data's
 * range rounded out to tenths), one point per epoch; legends sit where falling loss and rising accuracy leave room.
 * @example writeFileSync("curves.svg", curvesSvg("mlp", [{ name: "train loss", values, color: "#1f77b4" }], [...]))
 */
export function curvesSvg(title: string, loss: Series[], accuracy: Series[]): string {
  const epochs = Math.max(1, ...loss.map((s) => s.values.length), ...accuracy.map((s) => s.values.length));
  const width = 900;
  const height = 380;
  const accValues = accuracy.flatMap((s) => s.values).filter(Number.isFinite);
  const accLo = accValues.length ? Math.max(0, Math.floor(Math.min(...accValues) * 10 - 0.5) / 10) : 0;
  const accHi = accValues.length ? Math.min(1, Math.ceil(Math.max(...accValues) * 10 + 0.5) / 10) : 1;
  const body = [
    panel({ x: 70, y: 60, width: 340, height: 260 }, "loss", loss, epochs, "top"),
    panel({ x: 520, y: 60, width: 340, height: 260 }, "accuracy", accuracy, epochs, "bottom", [accLo, accHi]),
  ].join("\n");
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`,
    body,
    `</svg>`,
    "",
  ].join("\n");
}
