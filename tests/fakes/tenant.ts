// A fake fleet of tenant apps: one node:http server on 127.0.0.1 that answers
// `POST /<deployment>/stripe/events` the way a tenant's Convex HTTP action does, verifying each
// event with stripe-node's `constructEvent(body, header, secret)` against that deployment's own
// secret. It records every request (the order they arrived in, the raw body and header) and what
// it accepted, and can be told to answer 503 (down) or drop connections, per deployment.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import Stripe from "stripe";

const stripe = new Stripe("sk_test_x");

export type TenantMode = "up" | "down" | "drop";

export type TenantRequest = {
  deployment: string;
  /** The body exactly as it arrived (UTF-8). */
  body: string;
  signature: string | null;
  /** Date.now() when it arrived (the fake clock under fake timers). */
  at: number;
  /** What the fake did with it. */
  answer: "accepted" | "rejected" | "down" | "dropped";
  /** The event id, when the body parsed. */
  eventId?: string;
};

export type TenantFake = {
  url: string;
  /** Every request, in arrival order. */
  requests: TenantRequest[];
  /** The requests it verified and answered 200, in arrival order. */
  accepted(deployment?: string): TenantRequest[];
  /** `mode` for one deployment, or for every deployment without its own mode. */
  setMode(mode: TenantMode, deployment?: string): void;
  close(): Promise<void>;
};

/** `secretFor(deployment)`: the signing secret that deployment has (its STRIPE_WEBHOOK_SECRET). */
export async function startTenantFake(options: { secretFor: (deployment: string) => string | undefined }): Promise<TenantFake> {
  const requests: TenantRequest[] = [];
  const modes = new Map<string, TenantMode>();
  let defaultMode: TenantMode = "up";
  const sockets = new Set<Socket>();

  const answer = (response: ServerResponse, status: number, body: unknown) => {
    response.writeHead(status, { "content-type": "application/json" });
    response.end(JSON.stringify(body));
  };

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    const match = /^\/([^/]+)\/stripe\/events$/.exec(new URL(request.url ?? "/", "http://127.0.0.1").pathname);
    if (request.method !== "POST" || !match) return answer(response, 404, { error: "no such route" });
    const deployment = decodeURIComponent(match[1]);
    const header = request.headers["stripe-signature"];
    const signature = typeof header === "string" ? header : null;
    const recorded: TenantRequest = { deployment, body, signature, at: Date.now(), answer: "rejected" };
    try {
      recorded.eventId = (JSON.parse(body) as { id?: string }).id;
    } catch {
      // recorded as it came
    }
    requests.push(recorded);
    const mode = modes.get(deployment) ?? defaultMode;
    if (mode === "drop") {
      recorded.answer = "dropped";
      request.socket.destroy();
      return;
    }
    if (mode === "down") {
      recorded.answer = "down";
      return answer(response, 503, { error: "tenant down" });
    }
    const secret = options.secretFor(deployment);
    if (!secret || !signature) return answer(response, 400, { error: "no secret or no signature" });
    try {
      stripe.webhooks.constructEvent(body, signature, secret);
    } catch (error) {
      return answer(response, 400, { error: error instanceof Error ? error.message : String(error) });
    }
    recorded.answer = "accepted";
    return answer(response, 200, { received: true });
  };

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) answer(response, 500, { error: String(error) });
    });
  });
  server.keepAliveTimeout = 0;
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    accepted: (deployment) => requests.filter((r) => r.answer === "accepted" && (deployment === undefined || r.deployment === deployment)),
    setMode(mode, deployment) {
      if (deployment === undefined) defaultMode = mode;
      else modes.set(deployment, mode);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
