// Diagnostics: every user-visible error or warning has a code from this one catalog, and reaches
// the user as one line (what, where, how to fix). An HxcError is thrown by any layer; the CLI
// catches it, prints `format(err)` and exits with its exit code. A stack trace is a bug.

/**
 * The catalog. 1xxx warnings, 2xxx bad input or usage (exit 2), 3xxx budget/check failures (exit 1).
 * Each code has its title and a default fix, used when the place that raises it has no more
 * precise advice — so every line a user sees says how to fix it.
 */
export const CATALOG = {
  HXC1101: ['weights absent', 'put the weights file next to the model to run it; planning works without'],
  HXC1102: ['operators without shape inference', 'declare value_info for their outputs (onnx.shape_inference)'],
  HXC1103: ['value_info disagrees', 'export the model again, or drop the stale value_info'],
  HXC1104: ['unbound dims defaulted', 'bind them with --dim NAME=VALUE'],
  HXC1105: ['calibration incomplete', 'calibrate with a profile of the same model'],
  HXC1106: ['uniform routing assumed', 'give measured counts with --routing FILE'],
  HXC1107: ['KV capacity below what was asked', 'add devices or memory, or lower --context'],
  HXC1108: [
    'nodes whose results nothing reads',
    'they are left out of the plan, as onnxruntime leaves them out of a session; export the model again to drop them',
  ],
  HXC1109: [
    'a plan.json assignment names nodes this graph lacks',
    'they are left for hxc to place; plan with the same --tensor-parallel and expert options to pin them all',
  ],
  HXC1110: ['a --dim names no dim of the model', 'check the name: `hxc inspect MODEL` lists the inputs and outputs with their dims'],
  HXC1111: ['a routing trace for a model without MoE layers', 'drop --routing, or give the model the trace was measured on'],
  HXC1112: [
    'two plans, or a running plan and the model replanned, that share few nodes',
    'compare or replan plans of one model (a model change keeps most node names)',
  ],
  HXC1113: ['a forced --tensor-parallel that splits nothing', "choose a way count that divides the weights' columns, or auto"],
  HXC1114: [
    'an --assign pin on a Constant, a view of weights or a Shape not followed',
    'assign what reads the Constant or the view, or what the Shape measures',
  ],
  HXC1115: [
    "a plan's weights copied once (its folder on another file system than the model's)",
    "write --out on the model's file system (next to the model, say): its weights are then hard-linked, not copied",
  ],
  HXC1116: ["a stage cut past the exact solver's size, planned by the heuristics", 'use --max-stages to cut fewer stages for the MILP, or --solver auto'],
  HXC1117: ['some device kinds calibrated, others not', 'measure a run that uses every kind and calibrate with its telemetry'],
  HXC2000: ['not built', 'run `npm ci` or `npm run build` in the hxc folder'],
  HXC2001: ['cannot read file', 'check the path and its permissions'],
  HXC2002: ['usage', 'see `hxc --help` and `hxc COMMAND --help`'],
  HXC2003: ['unknown format', 'give a file in the format the command reads (see README, formats)'],
  HXC2004: ["output path not hxc's to replace", 'choose a new or empty folder, or one hxc wrote before'],
  HXC2005: ['cannot write output', 'choose a folder you can write to'],
  HXC2101: ['empty model file', 'export the model again'],
  HXC2102: ['not an ONNX model', 'give an .onnx file or an hxc-graph/v1 JSON graph'],
  HXC2103: ['truncated ONNX model', 'the file is truncated: copy or export it again'],
  HXC2104: ['external data outside the model folder', 'move the weights next to the model and save it with a relative location'],
  HXC2105: ['external data out of range', 'the weights file is truncated or belongs to another model'],
  HXC2106: ['size limit exceeded', 'split the input, or check that it is the file you meant'],
  HXC2107: ['malformed ONNX graph', 'export the model again (the ONNX checker names the problem too)'],
  HXC2201: ['invalid JSON', 'fix the JSON syntax at the place named'],
  HXC2202: ['invalid JSON graph', 'see the hxc-graph/v1 schema (src/schema/hxc-graph.v1.schema.json)'],
  HXC2203: ['undefined value', 'add the value to inputs or initializers, or the node that produces it'],
  HXC2204: ['graph has a cycle', 'break the cycle: a value cannot depend on itself'],
  HXC2205: ['duplicate name', 'give every node and value a unique name'],
  HXC2206: ['invalid dims binding', 'write NAME=INTEGER, e.g. --dim batch=8,seq=2048'],
  HXC2301: ['invalid YAML', 'fix the YAML at that line: spaces (not tabs) for indentation, unique keys, balanced brackets'],
  HXC2302: ['invalid topology', 'see the hxc-topology/v1 schema (src/schema/hxc-topology.v1.schema.json), or `hxc topology --default` for a whole example'],
  HXC2303: ['bad unit', 'write quantities with units: 80GiB, 3.35TB/s, 989TFLOPS, 2us'],
  HXC2304: ['unknown device', 'name a device the topology defines'],
  HXC2305: ['unknown catalog model', 'use a catalog name (`hxc topology --default` lists some), or write the numbers'],
  HXC2306: ['duplicate device id', 'give every device a unique id'],
  HXC2307: ['unreachable device', 'connect the device with a link'],
  HXC2308: ['an op no device runs', "add the op to a device's ops, or a device that runs it"],
  HXC2401: ['unknown pass', 'see `hxc passes` for the passes'],
  HXC2402: ['missing prerequisite pass', 'add the pass to --passes, or leave out --strict-passes'],
  HXC2403: ['invalid pass option', "see `hxc passes` for each pass's options"],
  HXC2501: ['invalid routing trace', 'see the hxc-routing/v1 schema (src/schema/hxc-routing.v1.schema.json); `hxc run` writes one'],
  HXC2502: ['invalid calibration file', 'give an onnxruntime profile (enableProfiling) or the telemetry `hxc run` writes'],
  HXC2503: ['invalid assignment', 'see the hxc-assignment/v1 schema (src/schema/hxc-assignment.v1.schema.json)'],
  HXC2601: ['tampered plan', 'the plan directory was changed after hxc wrote it: plan again'],
  HXC2602: ['invalid run inputs', 'write {"name": {"dtype": "int64", "shape": [1, 4], "data": [...]}} for every model input'],
  HXC2603: ['bad deployment', 'start each worker with the token file the coordinator names, and check that its address answers'],
  HXC3001: ['model does not fit', 'add devices or memory, lower --batch/--context, or use a smaller dtype'],
  HXC3003: ['numeric check failed', 'report this plan; run with --json for every output'],
  HXC3002: ['budget exceeded', 'change the model, the topology or the budget'],
} as const satisfies Record<string, readonly [title: string, fix: string]>;

export type DiagCode = keyof typeof CATALOG;

export interface DiagInfo {
  /** Where: a file path, optionally with `:line`, a JSON path, a node name. */
  where?: string;
  /** How to fix it, one short clause. */
  hint?: string;
}

export class HxcError extends Error {
  readonly code: DiagCode;
  readonly where: string | undefined;
  readonly hint: string | undefined;
  readonly exitCode: number;

  constructor(code: DiagCode, message: string, info: DiagInfo = {}) {
    super(message);
    this.name = 'HxcError';
    this.code = code;
    this.where = info.where;
    this.hint = info.hint;
    this.exitCode = code.startsWith('HXC3') ? 1 : 2;
  }
}

/** One line: `error HXC2304: rack.yaml:14: link "nvlink0" names unknown device "gpu9" (fix: ...)`. */
export function formatDiagnostic(severity: 'error' | 'warning', code: DiagCode, message: string, info: DiagInfo = {}): string {
  const where = info.where ? `${oneLine(info.where)}: ` : '';
  const hint = ` (fix: ${info.hint ?? CATALOG[code][1]})`;
  return `hxc: ${severity} ${code}: ${where}${oneLine(message)}${oneLine(hint)}`;
}

export function formatError(err: HxcError): string {
  return formatDiagnostic('error', err.code, err.message, { where: err.where, hint: err.hint });
}

/** One line, and no quoted value longer than 80 characters (a 5000-character name is echoed as its start and its length). */
function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').replace(/"([^"]{80,})"/g, (_, v: string) => `"${v.slice(0, 40)}…" (${v.length} characters)`);
}

/** Where reported lines go: stderr, unless a caller (a test, an embedding tool) takes them. */
let sink: (line: string) => void = (line) => {
  process.stderr.write(line + '\n');
};

/** Send reported lines (warnings) to `next` instead; returns the previous receiver. */
export function reportTo(next: (line: string) => void): (line: string) => void {
  const previous = sink;
  sink = next;
  return previous;
}

/** Report one line (a warning a command prints once): the one way diagnostics leave the library. */
export function report(line: string): void {
  sink(line);
}

/** Collects warnings so that commands print them once each, in order, and tests can read them. */
export class Diagnostics {
  readonly warnings: { code: DiagCode; message: string; info: DiagInfo }[] = [];

  warn(code: DiagCode, message: string, info: DiagInfo = {}): void {
    this.warnings.push({ code, message, info });
  }

  lines(): string[] {
    return this.warnings.map((w) => formatDiagnostic('warning', w.code, w.message, w.info));
  }
}
