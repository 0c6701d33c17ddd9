// Runs one Step Functions definition with aws-local-stepfunctions, answering every Task from stdin.
//
// Line protocol (one JSON document per line):
//   stdin  first line : {"definition": {...}, "input": ..., "context": {...}, "startTime": "ISO-8601"}
//   stdout            : {"op": "event", "seq": N, ...}   every event of execution.eventLogs
//   stdout            : {"op": "task", "id": N, "seq": N, "state": name, "resource": arn, "parameters": input}
//   stdin             : {"id": N, "result": ...}  or  {"id": N, "error": "Name", "cause": "..."}
//   stdout (last)     : {"op": "end", "status": "SUCCEEDED"|"FAILED", "output", "error", "cause"}
//                       or {"op": "fatal", "message": ...} when the definition cannot run at all.
//
// `seq` is the library's event `timestamp`: Date.now() is replaced by a counter, so every event and task call
// carries its true dispatch order. Events of Parallel branches and Map iterations are forwarded to the root
// log asynchronously and can reach stdout after later root events; the harness re-sorts them by `seq`.
import { createRequire } from 'node:module';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const requireFromRepo = createRequire(path.join(repoRoot, 'package.json'));
const { StateMachine, ExecutionError, ExecutionAbortedError, ExecutionTimeoutError } =
  requireFromRepo('aws-local-stepfunctions');
// The same jsonpath-plus the library queries with, so wait durations are read exactly as it reads them.
const requireFromLibrary = createRequire(requireFromRepo.resolve('aws-local-stepfunctions'));
const { JSONPath } = requireFromLibrary('jsonpath-plus');

const DEFAULT_START = '2026-01-01T00:00:00.000Z';

function write(message) {
  // Writes to a pipe go out in order; a full pipe queues them (so never process.exit() before `exit`).
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

// Exits once everything written so far has left: a plain process.exit() can cut off a large last line.
function exit(code) {
  process.stdout.write('', () => process.exit(code));
}

// Deterministic clock: `new Date()` is the virtual start (the library stamps $$.Execution.StartTime with it),
// and Date.now() is a strictly increasing counter (event order, not wall time).
function installVirtualDate(startIso) {
  const RealDate = Date;
  const startMs = RealDate.parse(startIso);
  let counter = 0;
  class VirtualDate extends RealDate {
    constructor(...args) {
      if (args.length === 0) super(startMs);
      else super(...args);
    }
    static now() {
      counter += 1;
      return counter;
    }
  }
  globalThis.Date = VirtualDate;
}

// Every state of the definition, including those inside Parallel branches and Map item processors.
function* walkStates(definition) {
  for (const [name, state] of Object.entries(definition.States ?? {})) {
    yield [name, state];
    if (state.Type === 'Parallel') {
      for (const branch of state.Branches ?? []) yield* walkStates(branch);
    } else if (state.Type === 'Map') {
      const processor = state.ItemProcessor ?? state.Iterator;
      if (processor) yield* walkStates(processor);
    }
  }
}

// Rewrites the few spellings the library executes differently from AWS into equivalent ones.
function normalize(definition) {
  for (const [, state] of walkStates(definition)) {
    // The library stores a `ResultPath: "$"` result under a key named "$" (setJSONPath bug); "$" is also
    // the default, so dropping it keeps AWS semantics.
    if (state.ResultPath === '$') delete state.ResultPath;
    for (const catcher of state.Catch ?? []) {
      if (catcher.ResultPath === '$') delete catcher.ResultPath;
    }
  }
  // Execution timeouts are enforced on the virtual clock by the harness; a real timer would fire in wall time.
  delete definition.TimeoutSeconds;
  return definition;
}

// Wait duration as AWS would compute it, attached to the Wait's StateEntered event for the virtual clock.
function waitSpec(state, rawInput) {
  let input = rawInput;
  if (state.InputPath === null) input = {};
  else if (typeof state.InputPath === 'string') input = JSONPath({ path: state.InputPath, json: rawInput, wrap: false });
  const query = (p) => JSONPath({ path: p, json: input ?? null, wrap: false });
  if (state.Seconds !== undefined) return { seconds: state.Seconds };
  if (state.SecondsPath !== undefined) return { seconds: query(state.SecondsPath) ?? null };
  if (state.Timestamp !== undefined) return { timestamp: state.Timestamp };
  if (state.TimestampPath !== undefined) return { timestamp: query(state.TimestampPath) ?? null };
  return { seconds: 0 };
}

const pending = new Map();
let nextTaskId = 0;

async function main() {
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  const iterator = lines[Symbol.asyncIterator]();
  const first = await iterator.next();
  if (first.done) throw new Error('runner: no job line on stdin');
  const job = JSON.parse(first.value);
  installVirtualDate(job.startTime ?? DEFAULT_START);

  // Replies arrive in any order (several Parallel branches can wait on the harness at once).
  (async () => {
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
      if (!next.value.trim()) continue;
      const reply = JSON.parse(next.value);
      const resolve = pending.get(reply.id);
      if (!resolve) throw new Error(`runner: reply for unknown task id ${reply.id}`);
      pending.delete(reply.id);
      resolve(reply);
    }
    // The harness closed stdin: nothing will answer the open calls any more.
    exit(pending.size ? 3 : 0);
  })().catch(fatal);

  const definition = normalize(job.definition);
  const states = Object.fromEntries(walkStates(definition));
  const taskResourceLocalHandlers = {};
  const waitTimeOverrides = {};
  const retryIntervalOverrides = {};
  for (const [name, state] of Object.entries(states)) {
    if (state.Type === 'Task') taskResourceLocalHandlers[name] = taskHandler(name, state.Resource);
    if (state.Type === 'Wait') waitTimeOverrides[name] = 0;
    if (state.Retry) retryIntervalOverrides[name] = 0;
  }

  let machine;
  try {
    // Full asl-validator checks (checkPaths, checkArn) stay on: the harness renders CloudFormation tokens into
    // plain strings and ARNs first, and CDK's output passes them.
    machine = new StateMachine(definition, job.validationOptions ? { validationOptions: job.validationOptions } : {});
  } catch (err) {
    write({ op: 'fatal', message: String(err?.message ?? err) });
    exit(0);
    return;
  }

  const execution = machine.run(job.input, {
    overrides: { taskResourceLocalHandlers, waitTimeOverrides, retryIntervalOverrides },
    context: job.context ?? {},
  });

  const forwarding = (async () => {
    for await (const event of execution.eventLogs) {
      const { timestamp, ...rest } = event;
      const line = { op: 'event', seq: timestamp, ...rest };
      if (event.type === 'StateEntered' && event.state?.type === 'Wait') {
        try {
          line.wait = waitSpec(states[event.state.name], event.state.input);
        } catch {
          // An invalid path fails the state in the library itself (States.Runtime); no time passes.
          line.wait = { seconds: 0 };
        }
      }
      write(line);
    }
  })();

  const end = { op: 'end' };
  try {
    end.output = await execution.result;
    end.status = 'SUCCEEDED';
  } catch (err) {
    if (err instanceof ExecutionError) {
      const cause = err.cause ?? err;
      end.status = 'FAILED';
      // A Fail state without Error/Cause fails with neither in AWS; the library fills in defaults.
      const fromFailState = cause?.constructor?.name === 'FailStateError';
      end.error = fromFailState && cause.name === 'FailStateError' ? null : (cause?.name ?? null);
      end.cause =
        fromFailState && cause.message === 'Execution failed because of a Fail state'
          ? null
          : (cause?.message ?? null);
    } else if (err instanceof ExecutionAbortedError) {
      end.status = 'ABORTED';
    } else if (err instanceof ExecutionTimeoutError) {
      end.status = 'TIMED_OUT';
    } else {
      throw err;
    }
  }
  await forwarding;
  // Nested loggers forward their last events a few microtasks late: let them land before the end line.
  await new Promise((resolve) => setImmediate(resolve));
  write(end);
  exit(0);
}

function taskHandler(stateName, resource) {
  return async (parameters) => {
    // Called synchronously right after the library dispatched this state's StateEntered (or StateRetried),
    // so this seq places the call exactly in the event order.
    const seq = Date.now();
    // Let every event dispatched before this call (also those forwarded from branches) reach stdout first.
    await new Promise((resolve) => setImmediate(resolve));
    nextTaskId += 1;
    const id = nextTaskId;
    const reply = await new Promise((resolve) => {
      pending.set(id, resolve);
      write({ op: 'task', id, seq, state: stateName, resource, parameters: parameters ?? null });
    });
    if (reply.error !== undefined && reply.error !== null) {
      // The library matches Retry/Catch ErrorEquals on `name` and builds the Catch output from
      // {Error: name, Cause: message}.
      const error = new Error(reply.cause ?? '');
      error.name = reply.error;
      throw error;
    }
    return reply.result === undefined ? null : reply.result;
  };
}

function fatal(err) {
  write({ op: 'fatal', message: String(err?.stack ?? err) });
  exit(2);
}

main().catch(fatal);
