// media.js: local capture (camera, microphone, screen).

const CAMERA_VIDEO = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30, max: 30 } };
const MICROPHONE = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
// Slides and code change little; a low frame rate keeps text sharp for
// the same bitrate.
const SCREEN_VIDEO = { frameRate: { ideal: 15, max: 30 } };

// Errors after which one device alone may still work.
const PARTIAL_RETRY = new Set(['NotFoundError', 'OverconstrainedError', 'NotReadableError', 'AbortError']);

export function canCapture() {
  return Boolean(navigator.mediaDevices?.getUserMedia);
}

export function canShareScreen() {
  return Boolean(navigator.mediaDevices?.getDisplayMedia);
}

// openCamera asks for camera and microphone. A computer without a camera
// (or with one busy in another app) can still teach with its microphone,
// and the other way round.
export async function openCamera() {
  if (!canCapture()) throw new DOMException('Camera access needs https', 'NotSupportedError');
  const md = navigator.mediaDevices;
  try {
    return await md.getUserMedia({ video: CAMERA_VIDEO, audio: MICROPHONE });
  } catch (err) {
    if (!PARTIAL_RETRY.has(err.name)) throw err;
    for (const constraints of [{ video: CAMERA_VIDEO }, { audio: MICROPHONE }]) {
      try {
        return await md.getUserMedia(constraints);
      } catch {
        // try the next device
      }
    }
    throw err;
  }
}

export async function openScreen() {
  const media = await navigator.mediaDevices.getDisplayMedia({ video: SCREEN_VIDEO, audio: false });
  for (const track of media.getVideoTracks()) {
    if ('contentHint' in track) track.contentHint = 'detail';
  }
  return media;
}

export function stopMedia(media) {
  for (const track of media?.getTracks() ?? []) track.stop();
}

// describeMediaError turns a getUserMedia/getDisplayMedia failure into advice.
export function describeMediaError(err) {
  switch (err?.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'Camera and microphone are blocked. Allow them in the browser (the icon in the address bar), then try again.';
    case 'NotFoundError':
      return 'No camera or microphone was found. Plug one in, then try again.';
    case 'NotReadableError':
    case 'AbortError':
      return 'The camera or microphone is in use by another app. Close it, then try again.';
    case 'NotSupportedError':
      return 'This browser cannot use the camera here. Open the class over https, or use a recent browser.';
    default:
      return `Could not start the camera${err?.message ? `: ${err.message}` : '.'}`;
  }
}
