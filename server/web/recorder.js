// The browser microphone through MediaRecorder (Opus in WebM, which the server decodes).
export const MIME = "audio/webm;codecs=opus";

/** Start recording; `onChunk(blob)` gets each chunk every `sliceMs`. Resolves to
 * { stop(): Promise<Blob> } (the whole recording once stopped). */
export async function record(onChunk = null, sliceMs = 250) {
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    throw new Error("This browser cannot record audio here (it needs a secure page: localhost or https).");
  }
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const options = MediaRecorder.isTypeSupported(MIME) ? { mimeType: MIME } : {};
  const recorder = new MediaRecorder(stream, options);
  const chunks = [];
  recorder.addEventListener("dataavailable", (event) => {
    if (!event.data.size) return;
    chunks.push(event.data);
    if (onChunk) onChunk(event.data);
  });
  recorder.start(sliceMs);
  return {
    stop() {
      return new Promise((resolve) => {
        recorder.addEventListener("stop", () => {
          for (const track of stream.getTracks()) track.stop();
          resolve(new Blob(chunks, { type: recorder.mimeType || MIME }));
        }, { once: true });
        recorder.stop();
      });
    },
  };
}
