// The HTML shell every Graft webview loads: a strict Content-Security-Policy with a per-load nonce,
// the view's bundled script (dist/webview/<name>.js), the shared stylesheet (media/webview.css)
// and the view's own (media/<name>.css).
import * as crypto from 'node:crypto';
import * as vscode from 'vscode';

export type WebviewName = 'inspector' | 'lineage' | 'compare' | 'merge' | 'connectivity';

/** Only dist/webview and media are reachable from a webview. */
export function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewOptions {
  return {
    enableScripts: true,
    localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist', 'webview'), vscode.Uri.joinPath(extensionUri, 'media')],
  };
}

export function renderWebviewHtml(webview: vscode.Webview, extensionUri: vscode.Uri, name: WebviewName, title: string): string {
  const nonce = crypto.randomBytes(16).toString('base64');
  const script = webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'dist', 'webview', `${name}.js`));
  const styles = ['webview.css', `${name}.css`].map((file) => webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'media', file)));
  const csp = [
    "default-src 'none'",
    `img-src ${webview.cspSource} data: blob:`,
    `style-src ${webview.cspSource} 'nonce-${nonce}'`,
    `font-src ${webview.cspSource}`,
    `script-src 'nonce-${nonce}'`,
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta property="csp-nonce" content="${nonce}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
${styles.map((href) => `<link rel="stylesheet" href="${href}" nonce="${nonce}">`).join('\n')}
<title>${escapeHtml(title)}</title>
</head>
<body data-view="${name}">
<div id="app" role="main"></div>
<script nonce="${nonce}" src="${script}"></script>
</body>
</html>`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
