// tsvision.methods: training methods that change how a network is trained or compressed.
export * from './prune';
export * from './mimic';
export * from './method';
export * from './phases';
export * from './dsd';
export * from './mimic-run';
export * from './prune-run';
export * from './calibrate';
