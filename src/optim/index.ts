// Optimizers, learning-rate schedules and gradient clipping; every update runs in libtorch in place.
export * from './optimizer';
export * from './sgd';
export * from './adam';
export * from './rmsprop';
export * from './schedule';
export * from './clip';
export * from './ema';
