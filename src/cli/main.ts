// The hxc command line (commander). Every command prints one clear line on bad input and exits
// 2; 1 means a budget or check failed; anything unexpected is an internal error, still one line.

import { Command, CommanderError, Option } from 'commander';
import { HxcError, formatError } from '../diag/diagnostics.js';
import { planCommand } from './plan.js';
import { addPassOptions } from './flags.js';
import { simulateCommand } from './simulate-command.js';
import { runCommand } from './run-command.js';
import { checkCommand } from './check-command.js';
import { inspectCommand } from './inspect-command.js';
import { passesCommand } from './passes-command.js';
import { topologyCommand } from './topology-command.js';
import { VERSION } from '../version.js';
import { diffCommand } from './diff-command.js';
import { reportCommand } from './report-command.js';
import { workerCommand } from './worker-command.js';
import { DEFAULT_AMORTIZE, DEFAULT_MIN_GAIN, replanCommand } from './replan-command.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('hxc')
    .description('heterogeneous execution compiler: plans AI models across CPUs, GPUs, accelerators, dataflow engines and IPUs')
    .version(VERSION)
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput(usageOutput('hxc'));

  const common = (c: Command): Command => c.option('--json', 'print a machine-readable JSON object on stdout');
  /** `--dim`, and the pass options `command` takes (declared by the passes: src/pass/options.ts). */
  const analysis = (c: Command, command: 'plan' | 'inspect' | 'check'): Command =>
    addPassOptions(
      // Repeatable, one value each (not variadic: `--dim batch=4 model.onnx` took the model for a binding).
      c.addOption(
        new Option('--dim <bindings>', 'bind symbolic dims, e.g. batch=8,seq=2048 (repeatable)').argParser((v: string, prev: string[] | undefined) => [
          ...(prev ?? []),
          v,
        ]),
      ),
      command,
    );

  analysis(
    common(
      program
        .command('plan')
        .description('run the pass pipeline on a model and a topology')
        .argument('<model>', 'ONNX model or hxc-graph/v1 JSON graph')
        .option('-t, --topology <file>', 'rack topology YAML (default: the built-in rack, see `hxc topology --default`)')
        .option('--passes <list>', 'comma-separated passes to run (prerequisites are pulled in)')
        .option('--strict-passes', 'with --passes: fail when a prerequisite is missing instead of pulling it in')
        .option('--print-before <pass>', 'print the IR before NAME (or all) on stderr')
        .option('--print-after <pass>', 'print the IR after NAME (or all) on stderr')
        .option('--dump-dir <dir>', 'write one stable text file per pass into DIR')
        .option('--time-passes', 'print a table of time per pass on stderr'),
    ),
    'plan',
  ).action(planCommand);

  common(
    program
      .command('replan')
      .description(
        'plan again from a running plan, counting the migration: units move only when their device is gone or the move pays back within --amortize requests; writes a full plan plus delta.json',
      )
      .argument('<plan-dir>', 'the running plan (a directory hxc plan or hxc replan wrote)')
      .option('-t, --topology <file>', "the rack now (a device removed or added); default: the plan's rack file")
      .option('--telemetry <file>', 'what a run measured (hxc-telemetry/v1): refits the cost model like plan --calibrate')
      .option('--routing <file>', 'measured MoE routing (hxc-routing/v1; hxc run writes one)')
      .option('--model <file>', 'the source model (default: where the plan was made from)')
      .addOption(new Option('--objective <objective>', "default: the plan's").choices(['latency', 'throughput']))
      .option('--max-moves <n>', 'at most N units moved, besides those whose device is gone')
      .option('--migration-budget <size>', 'at most this many bytes moved (e.g. 40GiB), besides units whose device is gone')
      .option('--amortize <n>', `requests the migration is spread over: a move must pay back within them (default ${DEFAULT_AMORTIZE})`)
      .option(
        '--min-gain <fraction>',
        `a plan that moves more units ships only when it is this much faster per request: 0.01 or 1% (default ${DEFAULT_MIN_GAIN * 100}%)`,
      )
      .option('--time-passes', 'print a table of time per pass on stderr')
      .option('-o, --out <dir>', 'plan directory to write', 'hxc-replan'),
  ).action(replanCommand);

  common(
    program
      .command('run')
      .description("execute a plan: one worker per device running its ONNX programs in plan order, tensors moving along the plan's transfers")
      .argument('<plan-dir>', 'plan directory written by hxc plan')
      .option('--inputs <file>', 'JSON of named tensors {name: {dtype, shape, data}} (default: seeded random inputs)')
      .option('--seed <n>', 'seed for random inputs', '0')
      .option('--iterations <n>', 'requests to run one after another', '1')
      .option('--check', "also run the unsplit model and compare every output (fails past 1e-5 of the output's scale + 1e-6)")
      .option('--decode-steps <n>', 'run a prefill and N decode steps, the KV cache kept on its owner devices')
      .option('--model <file>', 'the source model for --check (default: where the plan was made from)')
      .option('--timeout <s>', 'end the run when loading or a request takes longer than this, or a worker stops answering (default 600)')
      .option('--workers <file>', 'run the devices on hxc worker processes (hxc-workers/v1: each worker address and its devices, the token file)')
      .option('--spawn', 'start one hxc worker process per device on loopback for this run (stopped when it ends)')
      .addOption(
        new Option('--dim <bindings>', "override the plan's bound dims for the inputs (repeatable)").argParser((v: string, prev: string[] | undefined) => [
          ...(prev ?? []),
          v,
        ]),
      ),
  ).action(runCommand);

  program
    .command('worker')
    .description('serve devices of plans to coordinators (hxc run PLAN --workers W.yaml) over gRPC, each call authenticated by the token')
    .option('--listen <host:port>', 'address to listen on (port 0: any free port, printed on the first line)')
    .option(
      '--health <host:port>',
      'ask the worker there whether it serves (exit 0), drains (1), or does not answer or refuses the token (2); prints its status as JSON',
    )
    .option('--token-file <file>', 'file holding the token every coordinator must present')
    .option('--tls-cert <file>', 'PEM certificate: serve over TLS (with --tls-key)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--tls-ca <file>', 'PEM CA to trust when sending tensors to other workers over TLS (default: --tls-cert)')
    .option('--drain <s>', 'on SIGTERM, seconds the current run may take to finish before the worker stops', '30')
    .option('--json', 'print the address it listens on as one JSON line ({"listening": "HOST:PORT"}); --health prints JSON always')
    .addOption(new Option('--parent-watch', 'exit when stdin closes (hxc run --spawn)').hideHelp())
    .action(workerCommand);

  analysis(
    common(
      program
        .command('check')
        .description('CI gate: exit 1 when a plan (or a model, planned first) breaks a budget')
        .argument('<plan-or-model>', 'plan directory, or a model to plan with the options below')
        .option('-t, --topology <file>', 'rack topology YAML when planning a model')
        .option('--max-latency <time>', 'e.g. 5ms')
        .option('--max-ttft <time>', 'a serving plan: p90 time to first token under its workload, e.g. 200ms')
        .option('--max-tpot <time>', 'a serving plan: p90 time per output token under its workload, e.g. 50ms')
        .option('--max-memory <size>', 'per device: a size (70GiB) or a share of its capacity (90%)')
        .option('--min-throughput <n>', 'requests per second')
        .option('--max-gap <fraction>', 'gap to the lower bound: 0.2 or 20%')
        .option('--min-sequences <n>', 'KV-cache sequences of --context tokens (decode)')
        .option('--telemetry <file>', 'what a run measured (hxc-telemetry/v1, hxc run writes it), for --max-drift')
        .option('--max-drift <fraction>', 'measured busy time per device, and token shares per MoE layer, within this of the plan: 0.2 or 20%')
        .option('--junit <file>', 'also write JUnit XML there: one testcase per budget')
        .addOption(new Option('--format <format>', 'text (default) or github: workflow annotations for broken budgets').choices(['text', 'github'])),
    ),
    'check',
  ).action(checkCommand);

  common(
    program
      .command('diff')
      .description(
        'what changes between two plan directories: units moved and the bytes moved with them, experts, memory and utilisation per device, estimates, transfers (exit 0; 2 on bad input)',
      )
      .argument('<plan-a>', 'a plan directory')
      .argument('<plan-b>', 'another plan directory'),
  ).action(diffCommand);

  common(
    program
      .command('report')
      .description('one self-contained HTML page of a plan: the rack, the timeline, the placement, why, and what changed; opens from disk')
      .argument('<plan-dir>', 'plan directory written by hxc plan or hxc replan')
      .option('-o, --out <file>', 'HTML file to write (default PLAN_DIR/report.html)')
      .option('--compare <plan-dir>', 'another plan of the same model to compare with (what moved, before and after)'),
  ).action(reportCommand);

  common(
    program
      .command('simulate')
      .description(
        "discrete-event simulation of a plan on its topology, with link contention; writes a Chrome trace; with --workload, of a serving plan's requests",
      )
      .argument('<plan-dir>', 'plan directory written by hxc plan')
      .option('--requests <n>', 'requests to run back to back (pipelined; default 1)')
      .option('--trace <file>', 'Chrome trace to write (default PLAN_DIR/sim/trace.json)')
      .option(
        '--workload <file>',
        "a serving plan's requests instead (hxc-workload/v1): goodput, TTFT and TPOT percentiles, pool utilisation, KV occupancy per rate",
      ),
  ).action(simulateCommand);

  analysis(
    common(
      program
        .command('inspect')
        .description('what is in a model: ops, counts, parameters, inputs and outputs, opsets, state; --values, --costs')
        .argument('<model>', 'ONNX model or hxc-graph/v1 JSON graph')
        .option('-t, --topology <file>', 'rack topology YAML for --costs (default: the built-in rack)')
        .option('--values', 'list every value with its inferred dtype and shape')
        .option('--costs', 'per node FLOPs, bytes, intensity and roofline class per device kind'),
    ),
    'inspect',
  ).action(inspectCommand);

  common(program.command('passes').description('list the passes in pipeline order, with what each needs')).action(passesCommand);

  common(
    program
      .command('topology')
      .description('validate and print a rack topology (devices, memory, FLOP/s, bandwidth/latency matrix)')
      .argument('[file]', 'topology YAML')
      .option('--default', 'print the built-in default rack')
      .option('--matrix', "print every device and every pair's route, also on a rack of more than 32 devices"),
  ).action(topologyCommand);

  // A usage error names the help of the command it was made in (`hxc plan --help`), not the list of commands.
  for (const c of program.commands) c.configureOutput(usageOutput(`hxc ${c.name()}`));
  return program;
}

/** Commander's output: usage errors as one HXC2002 line (its suggestion, "(Did you mean --topology?)", joined to it). */
function usageOutput(command: string): { writeErr: (s: string) => void; outputError: (s: string, write: (s: string) => void) => void } {
  return {
    writeErr: (s) => process.stderr.write(s),
    outputError: (s, write) =>
      write(
        `hxc: error HXC2002: ${s
          .replace(/^error: /, '')
          .trim()
          .replace(/\s*\n\s*/g, ' ')} (fix: see \`${command} --help\`)\n`,
      ),
  };
}

export async function main(argv: string[]): Promise<void> {
  // A reader that stops early (`hxc inspect … | head`) is not an error.
  // Any other failure to write it (a full disk, /dev/full) is one line and exit 2, not a stack.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    const why = err.code === 'ENOSPC' ? 'no space left on the device' : err.message;
    process.stderr.write(
      formatError(new HxcError('HXC2005', `cannot write the output: ${why}`, { where: 'stdout', hint: 'send the output somewhere with room' })) + '\n',
    );
    process.exit(2);
  });
  // Nor does a stderr that cannot be written change the exit code: the diagnostic is lost (there is
  // nowhere left to say it), the status still says what happened (2 for bad input, not 1).
  process.stderr.on('error', () => {});
  process.exitCode = await runCli(argv);
}

/** One command line, run to its exit code (0, 1 a budget or check failed, 2 bad input); output on stdout/stderr. */
export async function runCli(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    return exitCodeFor(err);
  }
}

function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
    if (err.code === 'commander.executeSubCommandAsync') return err.exitCode;
    return 2; // commander already printed its one line through outputError
  }
  if (err instanceof HxcError) {
    process.stderr.write(formatError(err) + '\n');
    return err.exitCode;
  }
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`hxc: internal error: ${msg.split('\n')[0]} (this is a bug in hxc; rerun with HXC_DEBUG=1 for the stack and report it)\n`);
  if (process.env.HXC_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  return 1;
}
