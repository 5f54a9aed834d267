// /embed?project=…: the widget alone, for sites that embed tabgrid with an <iframe>.
import { defineTabgridWidget } from './tabgrid-widget';

defineTabgridWidget();
const widget = document.createElement('tabgrid-widget');
widget.setAttribute('coordinator', location.origin);
const project = new URLSearchParams(location.search).get('project');
if (project) widget.setAttribute('project', project.slice(0, 80));
document.body.style.margin = '0';
document.body.style.background = 'transparent';
document.getElementById('app')!.append(widget);
