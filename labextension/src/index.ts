import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { listIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

/**
 * The id of the sidebar panel; the layout restorer and UI tests find it by this id.
 */
export const PANEL_ID = 'slurm-magics-panel';

/**
 * The left-sidebar panel. For now it only says where its content will come from.
 */
export class SlurmPanel extends Widget {
  constructor() {
    super();
    this.id = PANEL_ID;
    this.addClass('jp-SlurmPanel');
    this.title.label = 'SLURM';
    this.title.caption = 'SLURM jobs';
    this.title.icon = listIcon;

    const heading = document.createElement('h2');
    heading.className = 'jp-SlurmPanel-title';
    heading.textContent = 'SLURM';

    const placeholder = document.createElement('p');
    placeholder.className = 'jp-SlurmPanel-placeholder';
    placeholder.textContent =
      'The job list comes from the slurm-magics server extension.';

    this.node.append(heading, placeholder);
  }
}

/**
 * Adds the SLURM panel to the left sidebar.
 */
const plugin: JupyterFrontEndPlugin<void> = {
  id: 'slurm-magics:plugin',
  description: 'A left-sidebar panel for the SLURM jobs of slurm-magics.',
  autoStart: true,
  optional: [ILayoutRestorer],
  activate: (app: JupyterFrontEnd, restorer: ILayoutRestorer | null) => {
    const panel = new SlurmPanel();
    app.shell.add(panel, 'left', { rank: 900 });
    // Reopens the panel after a page reload if it was open before.
    restorer?.add(panel, PANEL_ID);
  }
};

export default plugin;
