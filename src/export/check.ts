// How `tsvision export` decides that a file reproduces tsvision. One random input is not enough for
// networks that take maxima: where two pooled values tie to within float rounding, libtorch and
// onnxruntime may pick different winners, and max-unpooling then moves whole activations. Measured on
// a random-BatchNorm ENet: 3 of 2,200 random inputs differed by more than 1e-4 of the output scale (up to
// 7e-3), while tsvision in float64 sided with one runtime or the other. A wrong export differs on almost
// every input, so the inputs are seeded (the same every run, so a verdict can be repeated), and when the
// first differs, two more decide: both must agree.

/** The most inputs an export is checked on (the k-th drawn from seed + k; `export --check-seed`, default 0). */
export const CHECK_INPUTS = 3;

export type CheckVerdict = 'agree' | 'near-tie' | 'differ';

/** Whether another input must be checked, given whether each input so far agreed. */
export function checkNeedsMore(agreed: readonly boolean[]): boolean {
  return agreed.length === 0 || (agreed.length < CHECK_INPUTS && agreed.includes(false));
}

/** Every input agreed: 'agree'; only one differed, and at least two agreed: 'near-tie'; else 'differ'. */
export function checkVerdict(agreed: readonly boolean[]): CheckVerdict {
  if (agreed.length === 0) throw new Error('checkVerdict: no input was checked');
  const failed = agreed.filter((a) => !a).length;
  return failed === 0 ? 'agree' : failed === 1 && agreed.length - failed >= 2 ? 'near-tie' : 'differ';
}
