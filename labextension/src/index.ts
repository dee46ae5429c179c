import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { IStatusBar } from '@jupyterlab/statusbar';

import { SlurmAPI } from './api';
import { JobsModel } from './jobs';
import { PANEL_ID, SlurmPanel } from './panel';
import { SlurmStatus } from './status';

export { PANEL_ID, SlurmPanel } from './panel';

const OPEN_COMMAND = 'slurm-magics:open';

async function confirm(
  title: string,
  body: string,
  accept: string
): Promise<boolean> {
  const result = await showDialog({
    title,
    body,
    buttons: [
      Dialog.cancelButton({ label: 'Keep it' }),
      Dialog.warnButton({ label: accept })
    ]
  });
  return result.button.accept;
}

/**
 * The SLURM sidebar (left), backed by the slurm-magics server extension, and a
 * status-bar item with the user's running and pending task counts.
 */
const plugin: JupyterFrontEndPlugin<void> = {
  id: 'slurm-magics:plugin',
  description: 'A left-sidebar panel for the SLURM jobs of slurm-magics.',
  autoStart: true,
  optional: [ILayoutRestorer, IStatusBar],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    statusBar: IStatusBar | null
  ) => {
    const model = new JobsModel(
      new SlurmAPI(app.serviceManager.serverSettings)
    );
    const panel = new SlurmPanel({
      model,
      confirm,
      openNotebook: path =>
        void app.commands.execute('docmanager:open', { path })
    });
    app.shell.add(panel, 'left', { rank: 900 });
    // Reopens the panel after a page reload if it was open before.
    restorer?.add(panel, PANEL_ID);
    app.commands.addCommand(OPEN_COMMAND, {
      label: 'Show SLURM jobs',
      execute: () => app.shell.activateById(PANEL_ID)
    });
    if (statusBar) {
      statusBar.registerStatusItem('slurm-magics:status', {
        item: new SlurmStatus(
          model,
          () => void app.commands.execute(OPEN_COMMAND)
        ),
        align: 'left',
        rank: 50
      });
    }
    // The status bar needs the counts even while the panel is closed (slowly, then).
    model.start();
  }
};

export default plugin;
