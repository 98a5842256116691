import { test, vi } from "vitest";
import { setupBackend, sendCheckout, settleCheckout } from "../tests/harness";
test("dbg", async () => {
  vi.useFakeTimers();
  const t = setupBackend();
  const { sessionId } = await sendCheckout(t);
  const body = await settleCheckout(t, sessionId);
  console.log(JSON.stringify(body.error), JSON.stringify(body.steps.map(s=>[s.name,s.status,s.lastError?.message])));
});
