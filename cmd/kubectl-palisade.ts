// Placeholder until its issue lands: says what is missing and exits 2.
console.error('kubectl-palisade: not implemented yet (see the open issues)');
process.exit(2);
