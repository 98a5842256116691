import tseslint from "typescript-eslint";
import convexPlugin from "@convex-dev/eslint-plugin";

export default tseslint.config(
  { ignores: ["convex/_generated/**", "node_modules/**", ".bundle-check/**"] },
  {
    files: ["convex/**/*.ts"],
    languageOptions: { parser: tseslint.parser, parserOptions: { projectService: true } },
    plugins: { "@typescript-eslint": tseslint.plugin },
    rules: { "@typescript-eslint/no-floating-promises": "error" },
  },
  {
    files: ["tests/**/*.ts", "scripts/**/*.ts"],
    languageOptions: { parser: tseslint.parser, parserOptions: { projectService: true } },
    plugins: { "@typescript-eslint": tseslint.plugin },
    rules: { "@typescript-eslint/no-floating-promises": "error" },
  },
  ...convexPlugin.configs.recommended,
  // lib/config.ts is the one place that reads the environment (validated with zod).
  { files: ["convex/lib/config.ts"], rules: { "@convex-dev/no-process-env": "off" } },
);
