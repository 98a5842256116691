// A fake alert webhook receiver: one node:http server on 127.0.0.1 that answers `POST /alerts`
// the way an operator's endpoint should, verifying `Brain-Signature` (t=<unix seconds>,v1=<hex
// HMAC-SHA256 of "<t>.<body>">) with the shared secret and node:crypto, independently of Brain's
// own code. It records every request in arrival order and can be switched down (503), to refuse
// connections (the port closed) and up again on the same port.
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export type ReceiverMode = "up" | "down" | "refuse";

/** How old a signature may be, as Stripe's verifier allows. */
export const SIGNATURE_TOLERANCE_SECONDS = 300;

export type ReceivedAlert = {
  body: string;
  contentType: string | null;
  delivery: string | null;
  signature: string | null;
  /** Date.now() when it arrived (the fake clock under fake timers). */
  at: number;
  answer: "accepted" | "rejected" | "down";
  /** Why it was rejected. */
  reason?: string;
  /** The parsed body, when it parsed. */
  notice?: Record<string, unknown>;
};

export type AlertReceiver = {
  url: string;
  requests: ReceivedAlert[];
  /** The requests it verified and answered 200, in arrival order. */
  accepted(): ReceivedAlert[];
  setMode(mode: ReceiverMode): Promise<void>;
  close(): Promise<void>;
};

/** Verifies a `Brain-Signature` header over `body` with `secret` at `nowSeconds`; returns why not, or null. */
export function verifyBrainSignature(body: string, header: string | null, secret: string, nowSeconds: number): string | null {
  if (!header) return "no Brain-Signature header";
  const parts = new Map(header.split(",").map((part) => part.trim().split("=", 2) as [string, string]));
  const t = Number(parts.get("t"));
  const v1 = parts.get("v1") ?? "";
  if (!Number.isInteger(t) || !/^[0-9a-f]{64}$/.test(v1)) return "malformed Brain-Signature";
  const expected = createHmac("sha256", secret).update(`${t}.${body}`, "utf8").digest();
  if (!timingSafeEqual(expected, Buffer.from(v1, "hex"))) return "signature does not match";
  if (Math.abs(nowSeconds - t) > SIGNATURE_TOLERANCE_SECONDS) return "signature too old";
  return null;
}

export async function startAlertReceiver(options: { secret: string }): Promise<AlertReceiver> {
  const requests: ReceivedAlert[] = [];
  let mode: ReceiverMode = "up";
  const sockets = new Set<Socket>();

  const answer = (response: ServerResponse, status: number, body: unknown) => {
    response.writeHead(status, { "content-type": "application/json" });
    response.end(JSON.stringify(body));
  };

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    if (request.method !== "POST" || new URL(request.url ?? "/", "http://127.0.0.1").pathname !== "/alerts") {
      return answer(response, 404, { error: "no such route" });
    }
    const header = (name: string) => {
      const value = request.headers[name];
      return typeof value === "string" ? value : null;
    };
    const recorded: ReceivedAlert = {
      body,
      contentType: header("content-type"),
      delivery: header("brain-delivery"),
      signature: header("brain-signature"),
      at: Date.now(),
      answer: "rejected",
    };
    try {
      recorded.notice = JSON.parse(body) as Record<string, unknown>;
    } catch {
      // recorded as it came
    }
    requests.push(recorded);
    if (mode === "down") {
      recorded.answer = "down";
      return answer(response, 503, { error: "receiver down" });
    }
    const why = verifyBrainSignature(body, recorded.signature, options.secret, Math.floor(Date.now() / 1000));
    if (why) {
      recorded.reason = why;
      return answer(response, 400, { error: why });
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
  const port = (server.address() as AddressInfo).port;

  const stop = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      if (!server.listening) return resolve();
      server.close(() => resolve());
    });

  return {
    url: `http://127.0.0.1:${port}/alerts`,
    requests,
    accepted: () => requests.filter((r) => r.answer === "accepted"),
    async setMode(next) {
      if (next === "refuse" && server.listening) await stop();
      if (next !== "refuse" && !server.listening) await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
      mode = next;
    },
    close: stop,
  };
}
