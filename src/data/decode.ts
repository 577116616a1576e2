// One image decode for every reader (image folders, segmentation folders, Predictor): sharp (libvips, off the
// JavaScript thread), alpha dropped, grey or sRGB, optionally resized to fill (H, W). Callers name the file in
// their own errors.
import sharp from 'sharp';

export interface DecodeOptions {
  /** 1: greyscale; 3: sRGB (grey images expanded). */
  channels: 1 | 3;
  /** Resize to fill (H, W); null or absent: the image's own size. */
  size?: readonly [number, number] | null;
  /** 'lanczos3' (sharp's default) for images; 'nearest' for label maps, so that no class is invented. */
  kernel?: 'lanczos3' | 'nearest';
}

/** Raw interleaved pixels, height × width × channels bytes. */
export interface RawImage {
  data: Buffer;
  width: number;
  height: number;
  channels: number;
}

export async function decodeRaw(input: string | Buffer, o: DecodeOptions): Promise<RawImage> {
  let img = sharp(input, { failOn: 'error' }).removeAlpha();
  img = o.channels === 1 ? img.greyscale() : img.toColourspace('srgb');
  if (o.size) img = img.resize(o.size[1], o.size[0], { fit: 'fill', kernel: o.kernel ?? 'lanczos3' });
  const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}
