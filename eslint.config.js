// Lint rules: typescript-eslint's recommended set, plus the few rules that catch real bugs here.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

// After the presets in every block: the type-checked preset would otherwise reset them.
const SHARED_RULES = {
  "@typescript-eslint/no-unused-vars": [
    "error",
    { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" },
  ],
  "@typescript-eslint/consistent-type-imports": "error",
  "no-constant-condition": ["error", { checkLoops: false }],
  eqeqeq: ["error", "always", { null: "ignore" }],
};

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "coverage/", "bench/results/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        console: "readonly",
        process: "readonly",
        Buffer: "readonly",
        setTimeout: "readonly",
        clearTimeout: "readonly",
        setInterval: "readonly",
        clearInterval: "readonly",
        setImmediate: "readonly",
        URL: "readonly",
        AbortController: "readonly",
        AbortSignal: "readonly",
        TextDecoder: "readonly",
        TextEncoder: "readonly",
        structuredClone: "readonly",
        queueMicrotask: "readonly",
      },
    },
    rules: SHARED_RULES,
  },
  {
    // typescript-eslint's type-checked rules on every TypeScript file: no `any` flowing through
    // (commander's values are read through cli/options.ts specs, JSON through checks), no
    // forgotten promise, no needless assertion.
    files: ["**/*.ts"],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      ...SHARED_RULES,
      // node:test's test() and describe() return promises the runner itself awaits.
      "@typescript-eslint/no-floating-promises": [
        "error",
        {
          allowForKnownSafeCalls: [
            { from: "package", package: "node:test", name: ["test", "describe", "it", "suite"] },
          ],
        },
      ],
      // Passing on a caught value (typed unknown) is not inventing a non-Error rejection.
      "@typescript-eslint/prefer-promise-reject-errors": ["error", { allowThrowingUnknown: true }],
      // An async method that implements a Promise-returning interface without awaiting is the
      // point: a throw inside it becomes a rejection, as callers expect.
      "@typescript-eslint/require-await": "off",
    },
  },
  {
    // CommonJS: a SEA's main script is not an ES module, and bin/extctl.cjs starts faster as one.
    files: ["**/*.cjs"],
    languageOptions: {
      sourceType: "commonjs",
      globals: { require: "readonly", __dirname: "readonly" },
    },
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
);
