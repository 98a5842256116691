// Fake of GitHub's REST API for one workflow_dispatch target (https://api.github.com, served here at the root),
// plus a fake "runner": each accepted dispatch later runs a test hook and POSTs Brain's signed callback
// (`X-Brain-Signature: t=<unix s>,v1=<hex HMAC-SHA256("<t>.<body>")>`) to the dispatch's `callback_url` input.
// It must never: accept a token other than the one it was started with, return a body or run id from the
// dispatch call (the real one answers 204 with nothing), crash or throw when a callback cannot be delivered,
// or call anything but the callback URL a test handed it.
import { createHmac } from "node:crypto";
import { startFakeServer, type FakeRequest, type FakeResponse, type FakeServer, type Route } from "./base";

export type GithubDispatch = { ref: string; inputs: Record<string, string>; at: number; runId: number };

export type GithubCallbackMode = "succeed" | "fail" | "silent";

/** One attempt to deliver a run's callback: `status` when the receiver answered, `error` when it could not be reached. */
export type GithubCallbackDelivery = { runId: number; url: string; at: number; status?: number; error?: string };

export type GithubFake = FakeServer & {
  dispatches(): GithubDispatch[];
  /**
   * How runs dispatched from now on end: "succeed"/"fail" POST a succeeded/failed callback; "silent" runs the
   * hook but never calls back (a lost callback). `delayMs` (default 0) is the time from dispatch to run.
   */
  setCallbackMode(mode: GithubCallbackMode, delayMs?: number): void;
  /** Work the "workflow" does before calling back (create a Pages deployment, mark a Convex deploy...). A throw fails the run. */
  onRun(hook: (inputs: Record<string, string>, runId: number) => void | Promise<void>): void;
  /** Every callback delivery attempt, failed ones included. */
  callbacks(): GithubCallbackDelivery[];
  /** Resolves once every dispatched run has finished (hook done, callback delivered or failed). */
  settle(): Promise<void>;
};

export type GithubFakeOptions = {
  token: string;
  /** "owner/name" */
  repository: string;
  /** Workflow file name (default "provision_backend.yml"); its numeric id is also accepted. */
  workflow?: string;
  callbackSecret: string;
};

/** The numeric id the fake gives its one workflow (the API accepts the id or the file name). */
export const GITHUB_WORKFLOW_ID = 161335;
const MAX_INPUTS = 25;
const DISPATCH_DOCS = "https://docs.github.com/rest/actions/workflows#create-a-workflow-dispatch-event";
const RUN_DOCS = "https://docs.github.com/rest/actions/workflow-runs#get-a-workflow-run";

const fail = (status: number, message: string, documentationUrl: string, extra: Record<string, unknown> = {}): FakeResponse => ({
  status,
  body: { message, ...extra, documentation_url: documentationUrl, status: String(status) },
});
const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** The header Brain verifies: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`. */
export function signCallback(rawBody: string, secret: string, timestampSeconds = Math.floor(Date.now() / 1000)): string {
  const signature = createHmac("sha256", secret).update(`${timestampSeconds}.${rawBody}`).digest("hex");
  return `t=${timestampSeconds},v1=${signature}`;
}

type Run = {
  id: number;
  status: "queued" | "in_progress" | "completed";
  conclusion: "success" | "failure" | null;
  timer?: ReturnType<typeof setTimeout>;
  release?: () => void;
};

export async function startGithubFake(options: GithubFakeOptions): Promise<GithubFake> {
  const workflow = options.workflow ?? "provision_backend.yml";
  const repository = options.repository.toLowerCase();
  const dispatches: GithubDispatch[] = [];
  const deliveries: GithubCallbackDelivery[] = [];
  const runs = new Map<number, Run>();
  const pending = new Set<Promise<void>>();
  let mode: GithubCallbackMode = "succeed";
  let delayMs = 0;
  let hook: (inputs: Record<string, string>, runId: number) => void | Promise<void> = () => {};
  let nextRunId = 10_000_001;
  let closed = false;

  const authorized =
    (handler: (request: FakeRequest) => FakeResponse): Route["handler"] =>
    (request) => {
      const header = request.headers.authorization ?? "";
      if (!header) return fail(401, "Requires authentication", "https://docs.github.com/rest");
      if (header !== `Bearer ${options.token}` && header !== `token ${options.token}`) {
        return fail(401, "Bad credentials", "https://docs.github.com/rest");
      }
      if (`${request.params.owner}/${request.params.repo}`.toLowerCase() !== repository) {
        return fail(404, "Not Found", DISPATCH_DOCS);
      }
      return handler(request);
    };

  const deliver = async (dispatch: GithubDispatch, failure: string | null) => {
    const url = dispatch.inputs.callback_url;
    if (!url) {
      deliveries.push({ runId: dispatch.runId, url: "", at: Date.now(), error: "no callback_url input" });
      return;
    }
    const rawBody = JSON.stringify({
      jobId: dispatch.inputs.job_id,
      step: dispatch.inputs.step ?? "deployApp",
      status: failure === null ? "succeeded" : "failed",
      runId: String(dispatch.runId),
      // As the workflow does (.github/workflows/provision_backend.yml): the dispatch it answers.
      ...(dispatch.inputs.dispatch_id ? { dispatchId: dispatch.inputs.dispatch_id } : {}),
      ...(failure === null ? { timings: { deployMs: Date.now() - dispatch.at } } : { message: failure }),
    });
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", "x-brain-signature": signCallback(rawBody, options.callbackSecret) },
        body: rawBody,
      });
      await response.arrayBuffer().catch(() => undefined);
      deliveries.push({ runId: dispatch.runId, url, at: Date.now(), status: response.status });
    } catch (error) {
      deliveries.push({ runId: dispatch.runId, url, at: Date.now(), error: error instanceof Error ? error.message : String(error) });
    }
  };

  const execute = async (dispatch: GithubDispatch, run: Run, runMode: GithubCallbackMode) => {
    run.status = "in_progress";
    let failure: string | null = runMode === "fail" ? "The deploy job failed (fake run)." : null;
    try {
      await hook({ ...dispatch.inputs }, run.id);
    } catch (error) {
      failure = `The deploy job failed: ${error instanceof Error ? error.message : String(error)}`;
    }
    run.status = "completed";
    run.conclusion = failure === null ? "success" : "failure";
    if (runMode !== "silent" && !closed) await deliver(dispatch, failure);
  };

  const schedule = (dispatch: GithubDispatch) => {
    const run: Run = { id: dispatch.runId, status: "queued", conclusion: null };
    runs.set(run.id, run);
    const runMode = mode;
    const done = new Promise<void>((resolve) => {
      run.release = resolve;
      run.timer = setTimeout(() => {
        run.timer = undefined;
        void execute(dispatch, run, runMode).finally(resolve);
      }, delayMs);
    });
    pending.add(done);
    void done.then(() => pending.delete(done));
  };

  const dispatch = (request: FakeRequest): FakeResponse => {
    const { workflowId } = request.params;
    if (workflowId !== workflow && workflowId !== String(GITHUB_WORKFLOW_ID)) return fail(404, "Not Found", DISPATCH_DOCS);
    let body: unknown;
    try {
      body = request.rawBody ? JSON.parse(request.rawBody) : {};
    } catch {
      return fail(400, "Problems parsing JSON", DISPATCH_DOCS);
    }
    if (!isObject(body)) return fail(400, "Problems parsing JSON", DISPATCH_DOCS);
    if (body.ref === undefined) return fail(422, `Invalid request.\n\n"ref" wasn't supplied.`, DISPATCH_DOCS);
    if (typeof body.ref !== "string" || !body.ref) {
      return fail(422, `Invalid request.\n\nFor 'properties/ref', ${JSON.stringify(body.ref)} is not a string.`, DISPATCH_DOCS);
    }
    const inputs = body.inputs ?? {};
    if (!isObject(inputs)) {
      return fail(422, `Invalid request.\n\nFor 'properties/inputs', ${JSON.stringify(inputs)} is not an object.`, DISPATCH_DOCS);
    }
    const entries = Object.entries(inputs);
    if (entries.length > MAX_INPUTS) {
      return fail(422, `you may only define up to ${MAX_INPUTS} \`inputs\` for a \`workflow_dispatch\` event`, DISPATCH_DOCS);
    }
    const notString = entries.find(([, value]) => typeof value !== "string");
    if (notString) {
      const [name, value] = notString;
      return fail(422, `Invalid request.\n\nFor 'properties/${name}', ${JSON.stringify(value)} is not a string.`, DISPATCH_DOCS, {
        errors: [{ resource: "WorkflowDispatch", field: `inputs.${name}`, code: "invalid" }],
      });
    }
    const accepted: GithubDispatch = {
      ref: body.ref,
      inputs: Object.fromEntries(entries) as Record<string, string>,
      at: Date.now(),
      runId: nextRunId++,
    };
    dispatches.push(accepted);
    schedule(accepted);
    return { status: 204 };
  };

  const routes: Route[] = [
    { method: "POST", path: "/repos/:owner/:repo/actions/workflows/:workflowId/dispatches", handler: authorized(dispatch) },
    {
      method: "GET",
      path: "/repos/:owner/:repo/actions/runs/:runId",
      handler: authorized((request) => {
        const run = runs.get(Number(request.params.runId));
        if (!run) return fail(404, "Not Found", RUN_DOCS);
        return {
          status: 200,
          body: {
            id: run.id,
            status: run.status,
            conclusion: run.conclusion,
            html_url: `https://github.com/${options.repository}/actions/runs/${run.id}`,
          },
        };
      }),
    },
  ];

  const server = await startFakeServer({
    name: "github",
    routes,
    errorBody: (status, message) => ({
      message: status === 404 ? "Not Found" : message,
      documentation_url: "https://docs.github.com/rest",
      status: String(status),
    }),
  });

  return {
    ...server,
    dispatches: () => dispatches.map((d) => ({ ...d, inputs: { ...d.inputs } })),
    setCallbackMode: (nextMode, nextDelayMs = 0) => {
      mode = nextMode;
      delayMs = nextDelayMs;
    },
    onRun: (nextHook) => {
      hook = nextHook;
    },
    callbacks: () => deliveries.map((d) => ({ ...d })),
    settle: async () => {
      while (pending.size) await Promise.all([...pending]);
    },
    close: async () => {
      closed = true;
      for (const run of runs.values()) {
        if (run.timer) {
          clearTimeout(run.timer);
          run.release?.();
        }
      }
      await server.close();
    },
  };
}
