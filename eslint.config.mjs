import nx from '@nx/eslint-plugin';
import tseslint from 'typescript-eslint';

export default [
  { ignores: ['**/dist/**', '**/node_modules/**', '**/coverage/**', '**/*.cjs', 'tmp/**', '.nx/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.mjs'],
    plugins: { '@nx': nx },
    rules: {
      // The dependency direction of docs/architecture.md: apps -> libs, auth libs -> registry
      // libs only, tools imported by nobody; no cycles, no deep imports across packages.
      '@nx/enforce-module-boundaries': [
        'error',
        {
          enforceBuildableLibDependency: true,
          banTransitiveDependencies: true,
          checkDynamicDependenciesExceptions: [],
          depConstraints: [
            { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:lib'] },
            { sourceTag: 'type:lib', onlyDependOnLibsWithTags: ['type:lib'] },
            { sourceTag: 'type:tool', onlyDependOnLibsWithTags: ['type:lib'] },
            // scope:test (libs/testing) is for tests only; the rule below keeps it out of shipped code.
            { sourceTag: 'scope:registry', onlyDependOnLibsWithTags: ['scope:registry', 'scope:auth', 'scope:test'] },
            { sourceTag: 'scope:auth', onlyDependOnLibsWithTags: ['scope:registry', 'scope:auth', 'scope:test'] },
            { sourceTag: 'scope:node', onlyDependOnLibsWithTags: ['scope:node', 'scope:registry', 'scope:auth', 'scope:test'] },
            { sourceTag: 'scope:test', onlyDependOnLibsWithTags: ['scope:test'] },
          ],
        },
      ],
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // Shipped code never imports the test support library.
    files: ['apps/*/src/**/*.ts', 'libs/*/src/**/*.ts'],
    ignores: ['**/*.test.ts', 'libs/testing/**'],
    rules: { 'no-restricted-imports': ['error', { paths: [{ name: '@registry-proxy/testing', message: 'test support is for tests only' }] }] },
  },
];
