// Speaker colours: each has at least 4.5:1 contrast on white (WCAG AA for text), so a label
// written in it is readable, and a bar drawn in it stands out (3:1 for graphics).
export const PALETTE = [
  "#1f5fa8", "#a3361f", "#2c6e2f", "#7b3fa0", "#805300",
  "#006b73", "#ad1f6a", "#4a5868", "#5b4bb7", "#8c3a3a",
];

export function speakerColour(speaker) {
  if (!speaker) return "#595959";
  return PALETTE[(speaker.id - 1) % PALETTE.length];
}
