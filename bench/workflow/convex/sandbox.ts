// Brain's sandbox provider state, unchanged: the sandbox adapters call it by name
// ("sandbox:applyOperation"), so the workflow app exposes it under the same name.
export { applyOperation } from "../../../convex/sandbox";
