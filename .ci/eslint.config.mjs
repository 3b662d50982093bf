// ESLint flat config. STYLE.md principle 3: only the Linux datapath edge (and the lab,
// which orchestrates processes and namespaces) may touch child processes and the kernel
// bindings.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const kernelImports = {
  paths: [
    { name: 'node:child_process', message: 'kernel/process access belongs in pkg/datapath/linux' },
    { name: 'child_process', message: 'kernel/process access belongs in pkg/datapath/linux' },
    { name: 'bpf', message: 'bpf maps belong in pkg/datapath/linux' },
    { name: 'netlink', message: 'netlink belongs in pkg/datapath/linux' },
  ],
};

export default tseslint.config(
  { ignores: ['dist/**', 'bin/**', 'node_modules/**', '.tools/**', 'bench/out/**', 'charts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', kernelImports],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly',
        setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly',
        clearInterval: 'readonly' },
    },
  },
  {
    files: ['pkg/datapath/linux/**/*.ts', 'pkg/lab/**/*.ts', 'test/**/*.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
);
