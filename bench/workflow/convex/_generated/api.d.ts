/* eslint-disable */
/**
 * Generated `api` utility.
 *
 * THIS CODE IS AUTOMATICALLY GENERATED.
 *
 * To regenerate, run `npx convex dev`.
 * @module
 */

import type {
  ApiFromModules,
  FilterApi,
  FunctionReference,
} from "convex/server";
import type * as checkout from "../checkout.js";
import type * as http from "../http.js";
import type * as provision from "../provision.js";
import type * as provisioning from "../provisioning.js";
import type * as sandbox from "../sandbox.js";

/**
 * A utility for referencing Convex functions in your app's API.
 *
 * Usage:
 * ```js
 * const myFunctionReference = api.myModule.myFunction;
 * ```
 */
declare const fullApi: ApiFromModules<{
  checkout: typeof checkout;
  http: typeof http;
  provision: typeof provision;
  provisioning: typeof provisioning;
  sandbox: typeof sandbox;
}>;
export declare const api: FilterApi<
  typeof fullApi,
  FunctionReference<any, "public">
>;
export declare const internal: FilterApi<
  typeof fullApi,
  FunctionReference<any, "internal">
>;

export declare const components: {
  "workflow": import("@convex-dev/workflow/_generated/component.js").ComponentApi<"workflow">;
};
