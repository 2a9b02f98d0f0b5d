/** A small SVG line chart: series of (epoch, value) points, axes with round ticks, redrawn on demand. */

const SVG = "http://www.w3.org/2000/svg";

export interface Point {
  x: number;
  y: number;
}

export interface ChartOptions {
  /** Fixed y range; a missing end follows the data. */
  yMin?: number;
  yMax?: number;
  xLabel: string;
  format: (y: number) => string;
}

interface Series {
  points: Point[];
  className: string;
  /** Draw a dot at every point (sparse series such as test evaluations). */
  dots: boolean;
}

const WIDTH = 480;
const HEIGHT = 200;
const MARGIN = { left: 44, right: 10, top: 8, bottom: 26 };

function niceStep(span: number, ticks: number): number {
  const raw = span / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  const scaled = raw / power;
  return (scaled < 1.5 ? 1 : scaled < 3 ? 2 : scaled < 7 ? 5 : 10) * power;
}

function el<K extends keyof SVGElementTagNameMap>(name: K, attributes: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

export class LineChart {
  private readonly series = new Map<string, Series>();
  private scheduled = false;

  constructor(private readonly svg: SVGSVGElement, private readonly options: ChartOptions) {}

  add(name: string, points: Point[], style: { className: string; dots?: boolean }): void {
    const series = this.series.get(name) ?? { points: [], className: style.className, dots: style.dots ?? false };
    series.points.push(...points);
    this.series.set(name, series);
    this.schedule();
  }

  clear(): void {
    this.series.clear();
    this.schedule();
  }

  /** The points of one series (the page exposes first and last values for tests and screen readers). */
  points(name: string): readonly Point[] {
    return this.series.get(name)?.points ?? [];
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.render();
    });
  }

  render(): void {
    const all = [...this.series.values()].flatMap((s) => s.points).filter((p) => Number.isFinite(p.y));
    const xMax = Math.max(1, ...all.map((p) => p.x));
    let yMin = this.options.yMin ?? Math.min(...all.map((p) => p.y));
    let yMax = this.options.yMax ?? Math.max(...all.map((p) => p.y));
    if (!Number.isFinite(yMin) || !Number.isFinite(yMax)) [yMin, yMax] = [0, 1];
    if (yMax - yMin < 1e-9) yMax = yMin + 1;
    const plotW = WIDTH - MARGIN.left - MARGIN.right;
    const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
    const sx = (x: number): number => MARGIN.left + (x / xMax) * plotW;
    const sy = (y: number): number => MARGIN.top + (1 - (Math.min(Math.max(y, yMin), yMax) - yMin) / (yMax - yMin)) * plotH;

    const nodes: SVGElement[] = [];
    const yStep = niceStep(yMax - yMin, 4);
    for (let y = Math.ceil(yMin / yStep) * yStep; y <= yMax + 1e-9; y += yStep) {
      nodes.push(el("line", { class: "gridline", x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: sy(y), y2: sy(y) }));
      nodes.push(el("text", { class: "tick", x: MARGIN.left - 6, y: sy(y) + 4, "text-anchor": "end" }, this.options.format(y)));
    }
    const xStep = Math.max(niceStep(xMax, 5), xMax <= 2 ? 0.25 : 1);
    for (let x = 0; x <= xMax + 1e-9; x += xStep) {
      nodes.push(el("text", { class: "tick", x: sx(x), y: HEIGHT - 8, "text-anchor": "middle" }, String(Math.round(x * 100) / 100)));
    }
    nodes.push(el("text", { class: "axis-label", x: MARGIN.left - 6, y: HEIGHT - 8, "text-anchor": "end" }, this.options.xLabel));
    nodes.push(el("line", { class: "axis", x1: MARGIN.left, x2: MARGIN.left, y1: MARGIN.top, y2: HEIGHT - MARGIN.bottom }));
    nodes.push(el("line", { class: "axis", x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: HEIGHT - MARGIN.bottom, y2: HEIGHT - MARGIN.bottom }));
    for (const s of this.series.values()) {
      const finite = s.points.filter((p) => Number.isFinite(p.y));
      if (finite.length > 1) {
        const d = finite.map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join("");
        nodes.push(el("path", { class: `line ${s.className}`, d }));
      }
      if (s.dots) for (const p of finite) nodes.push(el("circle", { class: `dot ${s.className}`, cx: sx(p.x), cy: sy(p.y), r: 2.5 }));
    }
    this.svg.replaceChildren(...nodes);
  }
}
