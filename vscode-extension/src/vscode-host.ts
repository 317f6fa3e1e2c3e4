import * as vscode from 'vscode';
import type { Host } from './host.js';

/** The real Host: VS Code's window. */
export const vscodeHost: Host = {
  showInformationMessage: (message) => {
    void vscode.window.showInformationMessage(message);
  },
  showErrorMessage: (message) => {
    void vscode.window.showErrorMessage(message);
  },
};
