// @ts-check
import js from '@eslint/js';
import globals from 'globals';
import reactHooks from 'eslint-plugin-react-hooks';
import tseslint from 'typescript-eslint';

/**
 * Dependencies point inwards: core ← protocol ← store/broker/devices ← server/hub ← harness ← cli.
 * Each folder lists what it may not import; a violation is a lint error.
 */
const layer = (folder, forbidden, extra = []) => ({
  files: [`src/${folder}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          ...forbidden.map((f) => ({
            group: [`**/${f}/**`, `../${f}`, `../${f}/*`],
            message: `src/${folder} may not import src/${f} (dependencies point inwards).`,
          })),
          ...extra,
        ],
      },
    ],
  },
});

const nodeBuiltins = {
  group: ['node:*'],
  message: 'src/core is pure: time, ids, hashing and storage arrive through ports.',
};

export default tseslint.config(
  { ignores: ['node_modules/**', 'data/**', 'dist/**', 'coverage/**', 'web/dist/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
      // Fastify plugins are async by contract even when they await nothing.
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: { ...globals.node },
    },
  },
  // The web app: browser globals, the rules of hooks, and only type imports from src/protocol.
  {
    files: ['web/**/*.{ts,tsx}'],
    ...reactHooks.configs.flat.recommended,
    languageOptions: {
      globals: globals.browser,
      parserOptions: {
        projectService: false,
        project: ['./web/tsconfig.json'],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      ...reactHooks.configs.flat.recommended.rules,
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['core', 'store', 'broker', 'devices', 'server', 'hub', 'harness', 'cli'].map(
                (f) => `**/src/${f}/**`,
              ),
              message: 'The web app talks to the server only through src/protocol types.',
            },
            {
              group: ['**/src/protocol/**'],
              allowTypeImports: true,
              message: 'Import src/protocol into the web app with `import type` only.',
            },
          ],
        },
      ],
    },
  },
  // The service worker: plain JavaScript with service-worker globals (self, clients).
  {
    files: ['web/public/sw.js'],
    languageOptions: { globals: globals.serviceworker },
  },
  layer(
    'core',
    ['protocol', 'store', 'broker', 'devices', 'server', 'hub', 'harness', 'cli'],
    [nodeBuiltins],
  ),
  layer('protocol', ['store', 'broker', 'devices', 'server', 'hub', 'harness', 'cli']),
  layer('store', ['broker', 'devices', 'server', 'hub', 'harness', 'cli']),
  layer('broker', ['store', 'devices', 'server', 'hub', 'harness', 'cli']),
  layer('devices', ['store', 'broker', 'server', 'hub', 'harness', 'cli']),
  layer('server', ['devices', 'hub', 'harness', 'cli']),
  layer('hub', ['server', 'harness', 'cli']),
  layer('harness', ['cli']),
  {
    files: ['src/core/**/*.ts'],
    ignores: ['src/core/**/*.test.ts'],
    rules: {
      'no-restricted-globals': [
        'error',
        { name: 'Date', message: 'Use the Clock port.' },
        { name: 'setTimeout', message: 'Use the Clock port.' },
        { name: 'setInterval', message: 'Use the Clock port.' },
        { name: 'process', message: 'src/core has no I/O.' },
      ],
    },
  },
);
