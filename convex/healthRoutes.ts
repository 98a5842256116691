// Admin route for the fleet's health dashboard (GET /admin/health). Bearer token only, every
// call audited, JSON both ways.
import type { HttpRouter } from "convex/server";

export function registerHealthRoutes(_http: HttpRouter): void {}
