// Types of `offstage.js`, Offstage's browser client.

/** A task as the API shows it (`GET /api/tasks/{id}`). */
export interface Task {
  id: string;
  name: string;
  args: unknown;
  status: "queued" | "running" | "completed" | "failed" | "killed" | "missing";
  /** The state the task last wrote (`{}` until it writes one). */
  state: any;
  return_value: unknown | null;
  error: { kind: string; message: string; detail?: unknown } | null;
  launched_at: string;
  run_at: string;
  started_at: string | null;
  finished_at: string | null;
  attempt: number;
  priority: number;
  key: string | null;
  owner: string | null;
  timeout_s: number | null;
  isolated: boolean;
  node: string | null;
  /** The last checkpoint the task saved (what a later run of it starts from), or `null`. */
  checkpoint: unknown | null;
  /** When that checkpoint was saved. */
  checkpoint_at: string | null;
  /** The task that launched this one as its child (from its context, or with `parent`). */
  parent: string | null;
  /** A child left running when its parent ends by itself. */
  detached: boolean;
  /** While it runs and waits for a signal: the signal's name (it holds no slot meanwhile). */
  waiting_for?: string | null;
  /** When that wait times out, if it does. */
  waiting_until?: string | null;
  /** The id of the trace it was launched in (the W3C context current at launch), if any. */
  trace_id?: string | null;
  /** That context's W3C `traceparent`, and its `tracestate`. */
  traceparent?: string | null;
  tracestate?: string | null;
  /** `null` while queued or running, then the terminal status. */
  termination_status: "completed" | "failed" | "killed" | "missing" | null;
  is_running: boolean;
  [field: string]: unknown;
}

/** A signal as the server keeps it (`POST /api/tasks/{id}/signals/{name}`). */
export interface Signal {
  seq: number;
  task_id: string;
  name: string;
  payload: unknown;
  sent_at: string;
  sent_by: string | null;
  received_attempt: number | null;
  received_at: string | null;
  settled: boolean;
}

/** One log line of a task. */
export interface LogLine {
  seq: number;
  at: string;
  level: string;
  message: string;
  [field: string]: unknown;
}

/** An event as the stream carries it: `seq`, `task_id`, `at`, `type` and its fields. */
export interface TaskEvent {
  seq: number;
  task_id: string;
  at: string;
  type: "launched" | "started" | "state" | "checkpoint" | "log" | "finished";
  task?: Task;
  state?: any;
  /** For `checkpoint`: the checkpoint the task saved (the event's `at` is when). */
  checkpoint?: unknown;
  line?: LogLine;
}

/** What the server (or the network) said no with. */
export class OffstageError extends Error {
  constructor(code: string, message: string, status: number, options?: ErrorOptions);
  /** The API's error code (`not_found`, `unauthorized`, ...), `unreachable` or `bad_response`. */
  code: string;
  /** The HTTP status; 0 when no answer came. */
  status: number;
}

export interface OffstageOptions {
  /** A bearer token, or a function returning the current one (called before each request). */
  token?: string | (() => string | Promise<string>);
  fetch?: typeof fetch;
  retry?: { initialMs?: number; maxMs?: number };
}

export interface ListFilter {
  name?: string;
  status?: Task["status"];
  owner?: string;
  key?: string;
  /** Only children of this task. */
  parent?: string;
  limit?: number;
  before?: string;
}

export interface WatchHandlers {
  /** The record, each time one is read (at the start, and after a gap). */
  snapshot?(task: Task): void;
  /** The whole state, each time it changes; the first call is the current state. */
  state?(state: any, event: TaskEvent | null): void;
  log?(line: LogLine, event: TaskEvent): void;
  launched?(task: Task, event: TaskEvent): void;
  started?(task: Task, event: TaskEvent): void;
  /** Once, with the final record; the watch of one task ends after it. */
  finished?(task: Task, event: TaskEvent): void;
  /** The server refused the watch (bad or expired token, unknown id): the watch has ended. */
  error?(error: OffstageError): void;
  /** Every event, `gap` (`{first, last}`) included. */
  event?(type: string, data: any): void;
  connection?(status: "live" | "reconnecting" | "ended"): void;
}

export class Watch {
  /** The id of the last event read: what a reconnect sends as `Last-Event-ID`. */
  readonly lastEventId: string | null;
  /** How many times the stream connected. */
  readonly connections: number;
  readonly closed: boolean;
  /** The final record once the task finished; null if the watch ended otherwise. */
  readonly done: Promise<Task | null>;
  /** Stops watching: no handler is called after this. */
  close(): void;
  /** For tests: cuts the connection as a network failure would; reconnects after `until`. */
  _dropConnection(until?: Promise<unknown>): void;
}

export class Offstage {
  /** `baseUrl` defaults to the server this module was loaded from. */
  constructor(baseUrl?: string, options?: OffstageOptions);
  readonly baseUrl: string;
  get(id: string): Promise<Task>;
  list(filter?: ListFilter): Promise<{ tasks: Task[]; next_before: string | null }>;
  launch(name: string, args?: unknown, options?: Record<string, unknown>): Promise<Task>;
  kill(id: string, options?: { grace_s?: number }): Promise<Task>;
  /** Sends task `id` the signal `name` (the `signal` right, or the `control` role). */
  signal(id: string, name: string, payload?: unknown): Promise<Signal>;
  logs(id: string, options?: { after?: number; limit?: number }): Promise<{ lines: LogLine[]; next_after: number }>;
  watch(id: string, handlers?: WatchHandlers): Watch;
  watchAll(handlers?: WatchHandlers): Watch;
}

/** The Server-Sent Events parser `watch` uses. */
export class SseParser {
  constructor(onEvent: (event: { type: string; data: string; id: string | null }) => void);
  feed(text: string): void;
  lastId: string | null;
  retry: number | null;
}
