/**
 * Every run of control characters (line breaks, ESC, C1 codes) as one space: for untrusted text
 * that must stay on one line and cannot drive a terminal, such as a mount point from Prometheus
 * labels or an error message in a CLI log line. Beside the views, so services use it too.
 */
export function flattenControls(text: string): string {
	return text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, " ");
}
