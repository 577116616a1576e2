// tsvision.models: the classification networks and their registry.
export * from './common';
export * from './resnet';
export * from './senet';
export * from './mobilenet';
export * from './xception';
export * from './cnn';
export * from './shallow';
export * from './enet';
export * from './registry';
