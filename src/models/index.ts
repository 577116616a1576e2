// tsvision.models: the classification and segmentation networks and their registries.
export * from './common';
export * from './resnet';
export * from './senet';
export * from './mobilenet';
export * from './xception';
export * from './cnn';
export * from './shallow';
export * from './segmentation';
export * from './enet';
export * from './deeplabv3';
export * from './pspnet';
export * from './icnet';
export * from './registry';
