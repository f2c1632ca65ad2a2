/**
 * Picture generator for the simulated front-door security camera.
 *
 * The camera sits inside the home and looks at the front door. Every frame is drawn from
 * scratch into an RGBA buffer from simple filled shapes (wall, floor, door frame, door leaf,
 * outside view, an optional person) plus a burnt-in clock and label, then encoded as a
 * baseline JPEG. Rendering depends only on its input, so the same input always yields the same
 * bytes, which keeps recordings and tests reproducible.
 *
 * All scene geometry is designed on a 320 x 240 grid and scaled to the requested size.
 */
import jpeg from 'jpeg-js';

/** What the camera sees at one instant. */
export interface SceneInput {
  /** Whether the door is drawn open (dark doorway with daylight/outside visible and the door leaf swung) or closed. */
  doorOpen: boolean;
  /** Capture time, ms since the epoch. Drawn into the picture as a clock "HH:MM:SS.t" (tenths) in UTC plus the date "YYYY-MM-DD". */
  capturedAtMs: number;
  /** Short label drawn in a corner, e.g. the camera id "cam-front". ASCII only; unknown characters drawn as '?'. */
  label: string;
  /** Whether a person (simple silhouette) stands in the doorway. Optional, default false. */
  person?: boolean;
}

/** Output format of {@link renderScene}. */
export interface SceneOptions {
  /** Image width in pixels, a positive integer. Default 320. */
  width?: number;
  /** Image height in pixels, a positive integer. Default 240. */
  height?: number;
  /** JPEG quality, 1 (smallest) to 100 (best). Default 70. */
  quality?: number;
}

const DEFAULT_WIDTH = 320;
const DEFAULT_HEIGHT = 240;
const DEFAULT_QUALITY = 70;
/** Upper bound per side, so a typo cannot allocate gigabytes. */
const MAX_SIDE = 4096;
/** The scene is designed on this grid and scaled to the output size. */
const DESIGN_WIDTH = 320;
const DESIGN_HEIGHT = 240;

/**
 * Renders the scene to a baseline JPEG (Buffer). Deterministic: the same input gives the same bytes.
 *
 * @param input - What to draw: door state, capture time (ms since the epoch, shown in UTC),
 *   a corner label and optionally a person in the doorway.
 * @param options - Size in pixels (default 320 x 240) and JPEG quality (default 70).
 * @returns The encoded JPEG file contents.
 * @throws RangeError if the time is not a valid date or an option is out of range.
 */
export function renderScene(input: SceneInput, options: SceneOptions = {}): Buffer {
  const width = checkInteger('width', options.width ?? DEFAULT_WIDTH, 1, MAX_SIDE);
  const height = checkInteger('height', options.height ?? DEFAULT_HEIGHT, 1, MAX_SIDE);
  const quality = checkInteger('quality', options.quality ?? DEFAULT_QUALITY, 1, 100);
  const stamp = formatUtc(input.capturedAtMs);

  const canvas = new Canvas(width, height);
  drawRoom(canvas);
  drawDoorway(canvas, input.doorOpen);
  if (input.person === true) drawPerson(canvas);
  drawOverlay(canvas, stamp, input.label);

  return jpeg.encode({ data: canvas.data, width, height }, quality).data;
}

function checkInteger(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  }
  return value;
}

/** Formats ms since the epoch as "YYYY-MM-DD HH:MM:SS.t UTC" (tenths truncated, not rounded). */
function formatUtc(ms: number): string {
  const date = new Date(ms);
  if (Number.isNaN(date.getTime())) throw new RangeError(`capturedAtMs is not a valid time: ${ms}`);
  // toISOString() is "YYYY-MM-DDTHH:MM:SS.sssZ" (years beyond 9999 get a sign and six digits).
  const iso = date.toISOString();
  const [day = '', clock = ''] = iso.split('T');
  return `${day} ${clock.slice(0, 10)} UTC`;
}

// ---------------------------------------------------------------------------------------------
// Palette
// ---------------------------------------------------------------------------------------------

/** An opaque sRGB colour, channels 0-255. */
type Rgb = readonly [number, number, number];

const WALL: Rgb = [200, 190, 170];
const BASEBOARD: Rgb = [232, 228, 218];
const FLOOR: Rgb = [128, 96, 66];
const FLOOR_SEAM: Rgb = [106, 78, 52];
const FLOOR_SUNLIT: Rgb = [176, 142, 104];
const CASING: Rgb = [238, 235, 226];
const CASING_SHADOW: Rgb = [150, 142, 126];
const DOOR: Rgb = [120, 74, 40];
const DOOR_PANEL: Rgb = [98, 58, 30];
const DOOR_PANEL_LIGHT: Rgb = [150, 98, 58];
const DOOR_EDGE: Rgb = [76, 46, 24];
const HANDLE: Rgb = [222, 186, 70];
const HANDLE_SHADOW: Rgb = [120, 96, 30];
const HINGE: Rgb = [90, 90, 96];
const SKY: Rgb = [178, 216, 242];
const TREES: Rgb = [84, 132, 78];
const LAWN: Rgb = [128, 178, 96];
const PATH: Rgb = [214, 204, 184];
const THRESHOLD: Rgb = [170, 160, 146];
const PERSON: Rgb = [36, 38, 48];
const BAND: Rgb = [14, 14, 16];
const TEXT: Rgb = [248, 248, 248];
const REC_RED: Rgb = [230, 30, 30];

// ---------------------------------------------------------------------------------------------
// Canvas: an RGBA buffer with a few clipped fill primitives in design coordinates
// ---------------------------------------------------------------------------------------------

/**
 * RGBA pixel buffer. Shape methods take coordinates on the 320 x 240 design grid and scale them
 * to the real size; `*Px` methods take real pixels (used for text, which scales by whole pixels
 * to stay crisp). Rectangles are half-open: [x0, x1) x [y0, y1).
 */
class Canvas {
  readonly data: Uint8Array;
  private readonly sx: number;
  private readonly sy: number;

  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.data = new Uint8Array(width * height * 4);
    this.sx = width / DESIGN_WIDTH;
    this.sy = height / DESIGN_HEIGHT;
  }

  /** Design x to pixel x. */
  x(v: number): number {
    return Math.round(v * this.sx);
  }

  /** Design y to pixel y. */
  y(v: number): number {
    return Math.round(v * this.sy);
  }

  fillRect(x0: number, y0: number, x1: number, y1: number, color: Rgb): void {
    this.fillRectPx(this.x(x0), this.y(y0), this.x(x1), this.y(y1), color);
  }

  fillRectPx(x0: number, y0: number, x1: number, y1: number, color: Rgb): void {
    const left = Math.max(0, x0);
    const right = Math.min(this.width, x1);
    const top = Math.max(0, y0);
    const bottom = Math.min(this.height, y1);
    for (let py = top; py < bottom; py++) {
      for (let px = left; px < right; px++) this.setPx(px, py, color);
    }
  }

  /** Ellipse that is a circle of radius `r` on the design grid. */
  fillCircle(cx: number, cy: number, r: number, color: Rgb): void {
    this.fillEllipsePx(cx * this.sx, cy * this.sy, r * this.sx, r * this.sy, color);
  }

  fillEllipsePx(cx: number, cy: number, rx: number, ry: number, color: Rgb): void {
    const top = Math.max(0, Math.floor(cy - ry));
    const bottom = Math.min(this.height - 1, Math.ceil(cy + ry));
    const left = Math.max(0, Math.floor(cx - rx));
    const right = Math.min(this.width - 1, Math.ceil(cx + rx));
    for (let py = top; py <= bottom; py++) {
      for (let px = left; px <= right; px++) {
        // Sample at the pixel centre.
        const dx = (px + 0.5 - cx) / rx;
        const dy = (py + 0.5 - cy) / ry;
        if (dx * dx + dy * dy <= 1) this.setPx(px, py, color);
      }
    }
  }

  /**
   * Quadrilateral with two vertical sides: at `xa` it spans `ya0..ya1`, at `xb` it spans
   * `yb0..yb1`, interpolated linearly between. Used for the door leaf seen in perspective.
   */
  fillColumnTrapezoid(
    xa: number,
    ya0: number,
    ya1: number,
    xb: number,
    yb0: number,
    yb1: number,
    color: Rgb,
  ): void {
    const pxa = this.x(xa);
    const pxb = this.x(xb);
    const from = Math.max(0, Math.min(pxa, pxb));
    const to = Math.min(this.width, Math.max(pxa, pxb));
    for (let px = from; px < to; px++) {
      const t = pxb === pxa ? 0 : (px + 0.5 - pxa) / (pxb - pxa);
      const top = this.y(ya0 + (yb0 - ya0) * t);
      const bottom = this.y(ya1 + (yb1 - ya1) * t);
      this.fillRectPx(px, top, px + 1, bottom, color);
    }
  }

  /**
   * Quadrilateral with two horizontal sides: at `ya` it spans `xa0..xa1`, at `yb` it spans
   * `xb0..xb1`, interpolated linearly between. Used for the garden path and sunlight on the floor.
   */
  fillRowTrapezoid(
    ya: number,
    xa0: number,
    xa1: number,
    yb: number,
    xb0: number,
    xb1: number,
    color: Rgb,
  ): void {
    const pya = this.y(ya);
    const pyb = this.y(yb);
    const from = Math.max(0, Math.min(pya, pyb));
    const to = Math.min(this.height, Math.max(pya, pyb));
    for (let py = from; py < to; py++) {
      const t = pyb === pya ? 0 : (py + 0.5 - pya) / (pyb - pya);
      const left = this.x(xa0 + (xb0 - xa0) * t);
      const right = this.x(xa1 + (xb1 - xa1) * t);
      this.fillRectPx(left, py, right, py + 1, color);
    }
  }

  private setPx(px: number, py: number, [r, g, b]: Rgb): void {
    const i = (py * this.width + px) * 4;
    this.data[i] = r;
    this.data[i + 1] = g;
    this.data[i + 2] = b;
    this.data[i + 3] = 255;
  }
}

// ---------------------------------------------------------------------------------------------
// Scene (design coordinates, 320 x 240)
// ---------------------------------------------------------------------------------------------

/** Where the wall meets the floor. */
const FLOOR_Y = 178;
/** Door opening inside the casing. */
const OPENING = { left: 118, right: 202, top: 46, bottom: FLOOR_Y } as const;
/** Width of the white door casing around the opening. */
const CASING_WIDTH = 9;
/** Height of the horizon seen through the open door. */
const HORIZON_Y = 104;

function drawRoom(c: Canvas): void {
  c.fillRect(0, 0, DESIGN_WIDTH, FLOOR_Y, WALL);
  c.fillRect(0, FLOOR_Y, DESIGN_WIDTH, DESIGN_HEIGHT, FLOOR);
  // Floor boards run away from the camera; seams get closer together towards the wall.
  for (const y of [184, 192, 203, 218, 236]) c.fillRect(0, y, DESIGN_WIDTH, y + 1.5, FLOOR_SEAM);
  c.fillRect(0, FLOOR_Y - 7, DESIGN_WIDTH, FLOOR_Y, BASEBOARD);
}

function drawDoorway(c: Canvas, open: boolean): void {
  const { left, right, top, bottom } = OPENING;

  // Casing: a light frame with a thin shadow line so it stands out from the wall.
  c.fillRect(
    left - CASING_WIDTH - 1,
    top - CASING_WIDTH - 1,
    right + CASING_WIDTH + 1,
    bottom,
    CASING_SHADOW,
  );
  c.fillRect(left - CASING_WIDTH, top - CASING_WIDTH, right + CASING_WIDTH, bottom, CASING);

  if (open) drawOpenDoor(c);
  else drawClosedDoor(c);
}

function drawClosedDoor(c: Canvas): void {
  const { left, right, top, bottom } = OPENING;
  c.fillRect(left, top, right, bottom, DOOR_EDGE);
  c.fillRect(left + 1, top + 1, right - 1, bottom, DOOR);

  // Four raised panels: light top-left edge, dark body.
  const panelLeft = [left + 10, (left + right) / 2 + 5];
  const panelWidth = (right - left) / 2 - 15;
  const rows: readonly (readonly [number, number])[] = [
    [top + 10, top + 58],
    [top + 70, bottom - 10],
  ];
  for (const x of panelLeft) {
    for (const [y0, y1] of rows) {
      c.fillRect(x - 1, y0 - 1, x + panelWidth, y1, DOOR_PANEL_LIGHT);
      c.fillRect(x, y0, x + panelWidth, y1, DOOR_PANEL);
    }
  }

  // Hinges on the left, handle on the right.
  for (const y of [top + 14, bottom - 24]) c.fillRect(left, y, left + 3, y + 10, HINGE);
  const hx = right - 10;
  const hy = (top + bottom) / 2 + 4;
  c.fillCircle(hx, hy + 1, 4.5, HANDLE_SHADOW);
  c.fillCircle(hx, hy, 4, HANDLE);
  c.fillRect(hx - 12, hy - 1.5, hx, hy + 2, HANDLE);
}

function drawOpenDoor(c: Canvas): void {
  const { left, right, top, bottom } = OPENING;
  const mid = (left + right) / 2;

  // Outside in daylight: sky, a line of trees, lawn, and a path leading to the door.
  c.fillRect(left, top, right, HORIZON_Y, SKY);
  c.fillCircle(left + 18, HORIZON_Y - 4, 12, TREES);
  c.fillCircle(left + 38, HORIZON_Y - 2, 9, TREES);
  c.fillCircle(right - 16, HORIZON_Y - 6, 14, TREES);
  c.fillRect(left, HORIZON_Y - 4, right, HORIZON_Y + 2, TREES);
  c.fillRect(left, HORIZON_Y + 2, right, bottom, LAWN);
  c.fillRowTrapezoid(HORIZON_Y + 2, mid - 3, mid + 3, bottom, left + 16, right - 16, PATH);
  c.fillRect(left, bottom - 4, right, bottom, THRESHOLD);

  // Daylight falling through the doorway onto the floor, widening towards the camera.
  c.fillRowTrapezoid(FLOOR_Y, left, right, DESIGN_HEIGHT, left - 26, right + 46, FLOOR_SUNLIT);

  // The leaf has swung into the room on its left hinges: its free edge is nearer the camera,
  // so it appears taller and further left. Drawn as the face plus a dark strip for its thickness.
  const freeX = left - 52;
  c.fillColumnTrapezoid(left, top, bottom, freeX, top - 16, bottom + 18, DOOR);
  c.fillColumnTrapezoid(freeX, top - 16, bottom + 18, freeX - 5, top - 17, bottom + 19, DOOR_EDGE);
  c.fillColumnTrapezoid(left, top, bottom, left - 3, top - 1, bottom + 1, DOOR_EDGE);
  // Recessed panels follow the perspective of the leaf.
  c.fillColumnTrapezoid(left - 8, top + 12, top + 60, freeX + 10, top - 1, top + 55, DOOR_PANEL);
  c.fillColumnTrapezoid(
    left - 8,
    top + 72,
    bottom - 12,
    freeX + 10,
    top + 68,
    bottom + 4,
    DOOR_PANEL,
  );
  // Handle near the free edge.
  c.fillCircle(freeX + 6, (top + bottom) / 2 + 3, 4, HANDLE);
}

/** A plain silhouette standing on the threshold, centred in the doorway. */
function drawPerson(c: Canvas): void {
  const cx = (OPENING.left + OPENING.right) / 2;
  const feet = OPENING.bottom;
  c.fillCircle(cx, 76, 11, PERSON); // head
  c.fillRect(cx - 4, 85, cx + 4, 93, PERSON); // neck
  c.fillCircle(cx - 11, 101, 8, PERSON); // rounded shoulders
  c.fillCircle(cx + 11, 101, 8, PERSON);
  c.fillRect(cx - 11, 93, cx + 11, 101, PERSON);
  c.fillRect(cx - 15, 101, cx + 15, 142, PERSON); // torso
  c.fillRect(cx - 19, 101, cx - 16, 136, PERSON); // arms, a sliver of background either side
  c.fillRect(cx + 16, 101, cx + 19, 136, PERSON);
  c.fillRect(cx - 13, 142, cx - 2, feet, PERSON); // legs
  c.fillRect(cx + 2, 142, cx + 13, feet, PERSON);
}

// ---------------------------------------------------------------------------------------------
// Overlay: clock band at the bottom, label top-left, REC indicator top-right
// ---------------------------------------------------------------------------------------------

function drawOverlay(c: Canvas, stamp: string, label: string): void {
  const scale = textScale(c.width, c.height, stamp);
  const pad = 2 * scale;

  // Clock on a dark band across the bottom, left-aligned.
  const bandHeight = GLYPH_HEIGHT * scale + 2 * pad;
  const bandTop = c.height - bandHeight;
  c.fillRectPx(0, bandTop, c.width, c.height, BAND);
  drawText(c, stamp, 3 * scale, bandTop + pad, scale);

  // REC indicator: red dot and "REC" on a dark box, top-right.
  const rec = 'REC';
  const dot = GLYPH_HEIGHT * scale;
  const recWidth = dot + pad + textWidth(rec, scale);
  const recLeft = c.width - recWidth - 2 * pad;
  c.fillRectPx(recLeft - pad, 0, c.width, dot + 2 * pad, BAND);
  c.fillEllipsePx(recLeft + dot / 2, pad + dot / 2, dot / 2 - 0.5, dot / 2 - 0.5, REC_RED);
  drawText(c, rec, recLeft + dot + pad, pad, scale);

  // Camera label top-left, truncated so it never runs into the REC box.
  const maxChars = Math.floor((recLeft - 4 * pad) / (ADVANCE * scale));
  const shown = label.slice(0, Math.max(0, maxChars));
  if (shown.length > 0) {
    c.fillRectPx(0, 0, textWidth(shown, scale) + 2 * pad, dot + 2 * pad, BAND);
    drawText(c, shown, pad, pad, scale);
  }
}

/**
 * Largest whole-pixel text scale that suits the image: about 2 at 320 x 240, growing with the
 * image, shrunk (not below 1) until the clock line fits across the width.
 */
function textScale(width: number, height: number, stamp: string): number {
  let scale = Math.max(1, Math.floor(Math.min(width / 160, height / 120)));
  while (scale > 1 && textWidth(stamp, scale) + 6 * scale > width) scale--;
  return scale;
}

// ---------------------------------------------------------------------------------------------
// 5 x 7 bitmap font
// ---------------------------------------------------------------------------------------------

const GLYPH_WIDTH = 5;
const GLYPH_HEIGHT = 7;
/** Horizontal distance between glyph origins, in font pixels (glyph plus one column of space). */
const ADVANCE = GLYPH_WIDTH + 1;

/** Glyph rows, top to bottom; '#' is an ink pixel. Lower-case letters are drawn as upper case. */
const FONT_SOURCE: Readonly<Record<string, readonly string[]>> = {
  '0': ['.###.', '#...#', '#..##', '#.#.#', '##..#', '#...#', '.###.'],
  '1': ['..#..', '.##..', '..#..', '..#..', '..#..', '..#..', '.###.'],
  '2': ['.###.', '#...#', '....#', '...#.', '..#..', '.#...', '#####'],
  '3': ['#####', '...#.', '..#..', '...#.', '....#', '#...#', '.###.'],
  '4': ['...#.', '..##.', '.#.#.', '#..#.', '#####', '...#.', '...#.'],
  '5': ['#####', '#....', '####.', '....#', '....#', '#...#', '.###.'],
  '6': ['..##.', '.#...', '#....', '####.', '#...#', '#...#', '.###.'],
  '7': ['#####', '....#', '...#.', '..#..', '.#...', '.#...', '.#...'],
  '8': ['.###.', '#...#', '#...#', '.###.', '#...#', '#...#', '.###.'],
  '9': ['.###.', '#...#', '#...#', '.####', '....#', '...#.', '.##..'],
  A: ['.###.', '#...#', '#...#', '#####', '#...#', '#...#', '#...#'],
  B: ['####.', '#...#', '#...#', '####.', '#...#', '#...#', '####.'],
  C: ['.###.', '#...#', '#....', '#....', '#....', '#...#', '.###.'],
  D: ['###..', '#..#.', '#...#', '#...#', '#...#', '#..#.', '###..'],
  E: ['#####', '#....', '#....', '####.', '#....', '#....', '#####'],
  F: ['#####', '#....', '#....', '####.', '#....', '#....', '#....'],
  G: ['.###.', '#...#', '#....', '#.###', '#...#', '#...#', '.####'],
  H: ['#...#', '#...#', '#...#', '#####', '#...#', '#...#', '#...#'],
  I: ['.###.', '..#..', '..#..', '..#..', '..#..', '..#..', '.###.'],
  J: ['..###', '...#.', '...#.', '...#.', '...#.', '#..#.', '.##..'],
  K: ['#...#', '#..#.', '#.#..', '##...', '#.#..', '#..#.', '#...#'],
  L: ['#....', '#....', '#....', '#....', '#....', '#....', '#####'],
  M: ['#...#', '##.##', '#.#.#', '#.#.#', '#...#', '#...#', '#...#'],
  N: ['#...#', '#...#', '##..#', '#.#.#', '#..##', '#...#', '#...#'],
  O: ['.###.', '#...#', '#...#', '#...#', '#...#', '#...#', '.###.'],
  P: ['####.', '#...#', '#...#', '####.', '#....', '#....', '#....'],
  Q: ['.###.', '#...#', '#...#', '#...#', '#.#.#', '#..#.', '.##.#'],
  R: ['####.', '#...#', '#...#', '####.', '#.#..', '#..#.', '#...#'],
  S: ['.####', '#....', '#....', '.###.', '....#', '....#', '####.'],
  T: ['#####', '..#..', '..#..', '..#..', '..#..', '..#..', '..#..'],
  U: ['#...#', '#...#', '#...#', '#...#', '#...#', '#...#', '.###.'],
  V: ['#...#', '#...#', '#...#', '#...#', '#...#', '.#.#.', '..#..'],
  W: ['#...#', '#...#', '#...#', '#.#.#', '#.#.#', '#.#.#', '.#.#.'],
  X: ['#...#', '#...#', '.#.#.', '..#..', '.#.#.', '#...#', '#...#'],
  Y: ['#...#', '#...#', '.#.#.', '..#..', '..#..', '..#..', '..#..'],
  Z: ['#####', '....#', '...#.', '..#..', '.#...', '#....', '#####'],
  ' ': ['.....', '.....', '.....', '.....', '.....', '.....', '.....'],
  ':': ['.....', '.##..', '.##..', '.....', '.##..', '.##..', '.....'],
  '.': ['.....', '.....', '.....', '.....', '.....', '.##..', '.##..'],
  '-': ['.....', '.....', '.....', '#####', '.....', '.....', '.....'],
  _: ['.....', '.....', '.....', '.....', '.....', '.....', '#####'],
  '/': ['....#', '....#', '...#.', '..#..', '.#...', '#....', '#....'],
  '?': ['.###.', '#...#', '....#', '...#.', '..#..', '.....', '..#..'],
};

/** Parsed glyphs: per row, the ink columns. Checked once at load so a typo fails loudly. */
const FONT: ReadonlyMap<string, readonly (readonly number[])[]> = new Map(
  Object.entries(FONT_SOURCE).map(([ch, rows]) => {
    if (rows.length !== GLYPH_HEIGHT || rows.some((r) => !/^[.#]{5}$/.test(r))) {
      throw new Error(`camera-scene: malformed glyph ${JSON.stringify(ch)}`);
    }
    return [ch, rows.map((r) => [...r].flatMap((p, col) => (p === '#' ? [col] : [])))];
  }),
);
const UNKNOWN_GLYPH = FONT.get('?') ?? [];

function textWidth(text: string, scale: number): number {
  return text.length === 0 ? 0 : (text.length * ADVANCE - 1) * scale;
}

/** Draws `text` with its top-left corner at pixel (x, y), each font pixel a `scale` square. */
function drawText(c: Canvas, text: string, x: number, y: number, scale: number): void {
  let originX = x;
  for (const ch of text) {
    const glyph = FONT.get(ch.toUpperCase()) ?? UNKNOWN_GLYPH;
    glyph.forEach((cols, row) => {
      for (const col of cols) {
        const px = originX + col * scale;
        const py = y + row * scale;
        c.fillRectPx(px, py, px + scale, py + scale, TEXT);
      }
    });
    originX += ADVANCE * scale;
  }
}
