import { AuthConfig, ImageSpec, PullImageRequest, ImageStatusResponse } from './gen/runtime/v1/api.js';

/** Field numbers are what makes this proto compatible with kubelet and containerd; check a few on the wire. */
describe('runtime.v1 wire format', () => {
  it('encodes PullImageRequest with the cri-api field numbers', () => {
    const bytes = Buffer.from(
      PullImageRequest.encode({
        image: { image: 'r/a:1', annotations: {}, userSpecifiedImage: '', runtimeHandler: '' },
        auth: { username: 'u', password: 'p', auth: '', serverAddress: '', identityToken: '', registryToken: 't' },
      }).finish(),
    );
    // field 1 (ImageSpec, length-delimited) = 0x0a, whose field 1 (image) = 0x0a; field 2 (AuthConfig) = 0x12
    expect(bytes.toString('hex')).toBe(Buffer.from([0x0a, 7, 0x0a, 5, ...Buffer.from('r/a:1'), 0x12, 9, 0x0a, 1, 0x75, 0x12, 1, 0x70, 0x32, 1, 0x74]).toString('hex'));
  });
  it('decodes what it encodes, ImageSpec fields 18 and 19 included', () => {
    const spec: ImageSpec = { image: 'x', annotations: { a: 'b' }, userSpecifiedImage: 'y', runtimeHandler: 'z' };
    expect(ImageSpec.decode(ImageSpec.encode(spec).finish())).toEqual(spec);
    const tags = [...ImageSpec.encode(spec).finish()];
    expect(tags).toContain(0x92); // field 18, length-delimited: tag (18 << 3 | 2) = 146, varint 0x92 0x01
    expect(tags).toContain(0x9a); // field 19: 154, varint 0x9a 0x01
    const status = ImageStatusResponse.decode(
      ImageStatusResponse.encode({ image: { id: 'sha256:1', repoTags: ['a'], repoDigests: [], size: 5_000_000_000n, uid: { value: 0n }, username: '', pinned: false }, info: {} }).finish(),
    );
    expect(status.image?.size).toBe(5_000_000_000n);
    expect(AuthConfig.fromPartial({ password: 'p' }).password).toBe('p');
  });
});
