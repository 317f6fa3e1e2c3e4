/**
 * The parts of the VS Code window the extension's logic uses, behind a narrow port (as
 * vscode-kubernetes-tools does with its Host). vscode-host.ts is the real one; tests use fakes.
 */
export interface Host {
  showInformationMessage(message: string): void;
  showErrorMessage(message: string): void;
}
